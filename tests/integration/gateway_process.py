"""`runq gateway` as a subprocess for the integration tests, and an SSE reader.

Shared by the gateway, curl and browser tests; the `gateway` fixture in conftest.py
starts one per module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from runq.worker.launcher import free_port
from tests.conftest import wait_for


def start_gateway(
    redis_url: str, tmp: Path, *args: str, tokens: str = "", env: dict[str, str] | None = None
) -> tuple[Any, str]:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "RUNQ_HOME": str(tmp / ".runq"),
           "RUNQ_GATEWAY_TOKENS": tokens, **(env or {})}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "runq.producers.cli", "gateway", "--port", str(port), *args],
        env=env, stdout=(tmp / "gateway.out").open("wb"), stderr=(tmp / "gateway.log").open("wb"),
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError((tmp / "gateway.log").read_text())
        try:
            return httpx.get(base + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=30, what="the gateway")
    return proc, base


def stop(proc: Any) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def parse_sse(lines: Iterable[str], limit: int | None = None) -> list[dict[str, Any]]:
    """SSE messages (id, event, data) from a stream's lines; stop after `limit` of them."""
    out: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if line.startswith(":"):
            continue
        if line == "":
            if current:
                current["data"] = json.loads(current["data"])
                out.append(current)
                current = {}
                if limit is not None and len(out) >= limit:
                    break
            continue
        field, _, value = line.partition(":")
        current[field] = value[1:] if value.startswith(" ") else value
    return out
