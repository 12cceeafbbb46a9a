"""The Celery app, and the composition root of a worker: `celery -A runq.worker worker`.

Configuration is derived from `Settings` when the app is first used (not at import), so
a command that starts the embedded stack can point the app at it before anything
connects.

The app owns the process's `Runtime` (the core's objects, `runq.worker.runtime`) and
connects the signal handlers (`runq.worker.signals`); the tasks (`runq.tasks`) import
the app and ask it for the runtime. Imports go one way: tasks -> worker -> runs.
"""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery

from runq.config.celery import celery_config
from runq.config.settings import get_settings
from runq.worker import signals
from runq.worker.discovery import resolve_redis_url
from runq.worker.runtime import Runtime, build_runtime

# Used only until a Redis is known: connecting to it fails with a clear message
# (see `require_redis_url`), never silently to some other server.
UNCONFIGURED = "redis://127.0.0.1:1/0"


class RunqCelery(Celery):
    """A Celery app that builds the core's objects once per process, on first use.

    Under a threads pool the first tasks arrive together: the lock makes them share one
    runtime (one Redis connection pool, one sweeper's objects) instead of each building
    its own.
    """

    _runtime: Runtime | None = None
    _runtime_lock = threading.Lock()

    @property
    def runtime(self) -> Runtime:
        runtime = self._runtime
        if runtime is None:
            with self._runtime_lock:
                if self._runtime is None:
                    self._runtime = build_runtime(self, get_settings())
                runtime = self._runtime
        return runtime

    def reset_runtime(self) -> None:
        """Forget the runtime (after a fork: a child must not reuse the parent's sockets,
        nor a lock a thread of the parent may have held at the fork)."""
        self._runtime_lock = threading.Lock()
        self._runtime = None

    def redis_url(self) -> str | None:
        """The Redis this app talks to (explicit REDIS_URL, or a `runq up` in this folder)."""
        url = str(self.conf.broker_url)
        return None if url == UNCONFIGURED else url


app = RunqCelery("runq", include=["runq.tasks.jobs", "runq.tasks.tools", "runq.tasks.batches"])
signals.connect(app)


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
    return app.redis_url()
