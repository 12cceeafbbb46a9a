"""Helpers for the Batch API tests: input files, waiting for a batch, reading result files."""

from __future__ import annotations

import json
from typing import Any

import openai
from openai.types import Batch
from sandbox_helpers import wait_until

from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.server.serve import SandboxServer

ENDED = ("completed", "failed", "expired", "cancelled")


def serve(**settings: Any) -> SandboxServer:
    """A sandbox of its own with these settings (timing of batches, windows, tiers)."""
    return SandboxServer(SandboxConfig(port=0, **settings))


def client_of(server: SandboxServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=10)


def line(custom_id: str, body: dict[str, Any], url: str = "/v1/responses") -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def question(custom_id: str, text: str, model: str = "gpt-4o-mini") -> dict[str, Any]:
    return line(custom_id, {"model": model, "input": text})


def upload(client: openai.OpenAI, lines: list[Any], purpose: str = "batch") -> str:
    """Upload ``lines`` as JSONL (a ``str`` item is written as is: a broken line)."""
    text = "".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in lines)
    return client.files.create(file=("requests.jsonl", text.encode()), purpose=purpose).id  # type: ignore[arg-type]


def create(
    client: openai.OpenAI, lines: list[Any], endpoint: str = "/v1/responses", **extra: Any
) -> Batch:
    file_id = upload(client, lines)
    return client.batches.create(
        input_file_id=file_id,
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window="24h",
        **extra,
    )


def wait_ended(client: openai.OpenAI, batch_id: str, timeout: float = 10.0) -> Batch:
    return wait_until(
        lambda: client.batches.retrieve(batch_id), lambda b: b.status in ENDED, timeout
    )


def results(client: openai.OpenAI, file_id: str | None) -> dict[str, dict[str, Any]]:
    """A result file's lines by ``custom_id`` (``{}`` for no file)."""
    if file_id is None:
        return {}
    text = client.files.content(file_id).text
    parsed = [json.loads(row) for row in text.splitlines()]
    by_id = {row["custom_id"]: row for row in parsed}
    assert len(by_id) == len(parsed), "a custom_id appears twice in a result file"
    return by_id
