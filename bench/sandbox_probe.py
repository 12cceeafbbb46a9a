"""`python -m bench.sandbox_probe ...`: the sandbox, plus one read-only route for benchmarks.

Same flags and behaviour as `python -m sandbox`; it adds `GET /bench/timelines`, which
returns, per `metadata.runq_job_id`, when the job's last-created response finished at
the backend (`done_at`, epoch seconds as a float) and its status; `GET /bench/responses`
lists every response with its job, attempt and round (for counting duplicate runs). The
public response object only carries whole seconds, too coarse for a latency in ms.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import runq.sandbox.server.app as sandbox_app
from runq.sandbox.api.http import get_state
from runq.sandbox.cli import main


async def timelines(request: Request) -> JSONResponse:
    state = get_state(request)
    now = time.time()
    by_job: dict[str, dict[str, Any]] = {}
    for rec in list(state.store.responses.values()):
        job = (rec.params.get("metadata") or {}).get("runq_job_id") or rec.job_id
        if not job:
            continue
        line = by_job.get(job)
        if line is None or rec.timeline.created_at >= line["created_at"]:
            by_job[job] = {
                "response_id": rec.id,
                "created_at": rec.timeline.created_at,
                "done_at": rec.timeline.done_at,
                "status": rec.status(now),
            }
    return JSONResponse(by_job)


async def responses(request: Request) -> JSONResponse:
    """Every response: id, job, `runq_attempt`, `runq_round`, status, created and done."""
    state = get_state(request)
    now = time.time()
    rows = []
    for rec in list(state.store.responses.values()):
        meta = rec.params.get("metadata") or {}
        rows.append({
            "id": rec.id, "job": meta.get("runq_job_id") or rec.job_id,
            "attempt": meta.get("runq_attempt"), "round": meta.get("runq_round"),
            "previous_response_id": rec.params.get("previous_response_id"),
            "status": rec.status(now), "created_at": rec.timeline.created_at,
            "done_at": rec.timeline.done_at,
        })  # fmt: skip
    return JSONResponse(rows)


_original_routes = sandbox_app.all_routes


def _routes() -> list[Any]:
    return [*_original_routes(), Route("/bench/timelines", timelines, methods=["GET"]),
            Route("/bench/responses", responses, methods=["GET"])]  # fmt: skip


sandbox_app.all_routes = _routes

if __name__ == "__main__":
    raise SystemExit(main())
