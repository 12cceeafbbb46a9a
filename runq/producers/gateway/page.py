"""The gateway's web page: submit a question and watch the answer stream in.

One self-contained HTML file (`index.html`, no external assets). The page reads the
event stream with `fetch()` and a `ReadableStream`, not `EventSource`: fetch can send
the `Authorization` header, so the token never appears in a URL (URLs end up in access
logs, proxies and browser history). It parses the SSE frames itself and, when the
connection drops, reconnects with `Last-Event-ID` set to the last id it saw.

A tool call that waits for a person (`approval.requested`, see `runs.approvals`) shows
its tool and arguments with Approve and Deny buttons, which post the decision to
`/v1/jobs/{id}/approvals/{call_id}`; arguments are set as text, never as HTML.
"""

from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def _template() -> str:
    return (Path(__file__).with_name("index.html")).read_text(encoding="utf-8")


def render(demo_token: str = "") -> str:
    return _template().replace("{{DEMO_TOKEN}}", html.escape(demo_token, quote=True))
