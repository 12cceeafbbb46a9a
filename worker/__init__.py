"""The Celery worker side of runq: `celery -A worker worker -Q runs,tools`.

`worker.app` is the Celery app; `AsyncResult(job_id, app=worker.app).get()` returns a
finished job's result.
"""

from worker import signals as _signals  # noqa: F401  (connects the handlers)
from worker.celery_app import app

__all__ = ["app"]
