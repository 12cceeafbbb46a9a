"""Admin endpoints under ``/sandbox``: counters for tests and benchmarks, and a reset.

They sit outside ``/v1`` so they are never rate limited, faulted or authenticated:
a test must be able to read the truth even while it injects chaos.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runq.sandbox.api.http import get_state, ok


async def stats(request: Request) -> Response:
    state = get_state(request)
    payload = state.stats.snapshot()
    payload["objects"] = state.store.counts()
    payload["webhooks"] = state.webhooks.counts()
    payload["config"] = {
        "latency_ms": state.config.latency_ms,
        "rpm": state.config.rpm,
        "tpm": state.config.tpm,
        "faults": state.config.faults,
        "seed": state.config.seed,
        "flex_unavailable_rate": state.config.flex_unavailable_rate,
        "batch_time_scale": state.config.batch_time_scale,
    }
    return ok(payload)


async def reset(request: Request) -> Response:
    get_state(request).reset()
    return ok({"reset": True})


async def health(request: Request) -> Response:
    return ok({"status": "ok"})


routes = [
    Route("/sandbox/stats", stats, methods=["GET"]),
    Route("/sandbox/reset", reset, methods=["POST"]),
    Route("/sandbox/health", health, methods=["GET"]),
]
