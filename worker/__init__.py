"""The Celery worker side of runq: `celery -A worker worker -Q runs,tools`.

`worker.app` is the Celery app; `AsyncResult(job_id, app=worker.app).get()` returns a
finished job's result.

The app (and its signal handlers) are loaded on first access to `worker.app`, not on
import of the package: producers that only read Redis (`runq ask` re-runs, `runq
status`) import `worker.launcher` and should not pay for Celery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery

    app: Celery

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from worker import signals as _signals  # noqa: F401  (connects the handlers)
        from worker.celery_app import app

        return app
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
