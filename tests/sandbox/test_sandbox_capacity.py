"""One process holds thousands of concurrent background responses."""

from __future__ import annotations

import asyncio

import openai
from sandbox_helpers import admin

from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.server.serve import SandboxServer


def test_two_thousand_concurrent_background_responses() -> None:
    config = SandboxConfig(port=0, latency_ms=30_000)
    with SandboxServer(config) as srv:
        client = openai.AsyncOpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=60)

        async def create_all() -> list[str]:
            sem = asyncio.Semaphore(64)

            async def one(i: int) -> str:
                async with sem:
                    r = await client.responses.create(
                        model="gpt-4o-mini", input=f"q{i}", background=True
                    )
                    return r.status

            # Closed in the loop that opened its 64 connections: asyncio.run closes the
            # loop, and connections left open would be reported later as unclosed.
            async with client:
                return await asyncio.gather(*[one(i) for i in range(2000)])

        statuses = asyncio.run(create_all())
        assert set(statuses) == {"queued"}
        stats = admin(srv.url, "/sandbox/stats")
        assert stats["in_flight_responses"] == 2000
        assert stats["peak_in_flight_responses"] == 2000
