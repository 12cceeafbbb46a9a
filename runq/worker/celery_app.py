"""The Celery app: `celery -A worker worker -Q runs,tools` starts a runq worker.

Configuration is derived from `Settings` when the app is first used (not at import), so
a command that starts the embedded stack can point the app at it before anything
connects.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from runq.config.celery import celery_config
from runq.config.settings import get_settings
from runq.worker import signals as _signals  # noqa: F401  (every process with an app connects them)
from runq.worker.discovery import resolve_redis_url

# Used only until a Redis is known: connecting to it fails with a clear message
# (see `require_redis_url`), never silently to some other server.
UNCONFIGURED = "redis://127.0.0.1:1/0"

app = Celery("runq", include=["runq.tasks.jobs", "runq.tasks.tools"])


@app.on_configure.connect
def _configure(sender: Celery, **_: Any) -> None:
    settings = get_settings()
    url = resolve_redis_url(settings) or UNCONFIGURED
    sender.conf.update(celery_config(settings, url))


def make_app(broker_url: str, name: str = "runq-producer") -> Celery:
    """A separate app bound to one Redis (a producer pointed at an explicit URL)."""
    other = Celery(name, set_as_current=False)
    other.conf.update(celery_config(get_settings(), broker_url))
    return other


def redis_url() -> str | None:
    """The Redis this process talks to (explicit REDIS_URL, or a `runq up` in this folder)."""
    url = str(app.conf.broker_url)
    return None if url == UNCONFIGURED else url
