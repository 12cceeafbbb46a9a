"""Helpers for the sandbox tests: admin calls over plain HTTP and deadline waits."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def admin(url: str, path: str, method: str = "GET") -> dict[str, Any]:
    """Call a ``/sandbox`` admin endpoint (no client library: it is not an API route)."""
    req = urllib.request.Request(url + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def wait_until(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 10.0) -> T:
    """Call ``fetch`` until ``done(result)``, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        time.sleep(0.02)


def is_terminal(response: Any) -> bool:
    return response.status not in ("queued", "in_progress")
