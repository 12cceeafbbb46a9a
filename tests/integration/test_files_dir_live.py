"""Produced files kept in a directory (RUNQ_FILES_DIR) instead of Redis, and read back by
the async client: real Redis, real workers, the sandbox over HTTP. A module of its own:
its workers must be the only ones taking jobs from the queues while it runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from runq.config.settings import load_settings
from runq.producers.client.aio import AsyncClient
from runq.worker.launcher import SandboxProcess
from tests.integration.conftest import stack_on

pytestmark = pytest.mark.integration
SALES = Path(__file__).resolve().parents[2] / "examples" / "data" / "sales.csv"
PNG = b"\x89PNG\r\n\x1a\n"


def test_files_kept_in_a_directory_and_read_by_the_async_client(
    redis_url: str, sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """RUNQ_FILES_DIR: the workers write each file under DIR/<job id>/, and a producer
    that sees the same directory reads it (here the async client)."""
    home = tmp_path_factory.mktemp("files_dir")
    kept = home / "kept"
    with stack_on(redis_url, sandbox, home, env={"RUNQ_FILES_DIR": str(kept)}) as stack:
        settings = load_settings(redis_url=stack.redis_url, files_dir=str(kept))

        async def plot() -> tuple[dict[str, Any], list[Any]]:
            async with AsyncClient(stack.redis_url, settings) as client:
                handle = await client.submit(
                    "Plot monthly sales", tools=["code_interpreter"], files=[SALES]
                )
                return await handle.result(timeout=90), await handle.files()

        result, files = asyncio.run(plot())
    assert result["status"] == "succeeded", result["error"]
    (png,) = [f for f in result["files"] if f.get("content_type") == "image/png"]
    assert png["storage"] == "dir" and png["ref"] == f"{result['job_id']}/{png['name']}"
    assert (kept / result["job_id"] / png["name"]).read_bytes().startswith(PNG)
    (chart,) = [f for f in files if f.name == png["name"]]
    assert chart.content.startswith(PNG) and chart.sha256 == png["sha256"]
