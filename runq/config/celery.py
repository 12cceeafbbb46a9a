"""Celery configuration derived from `Settings`: the few choices that make runq safe.

- JSON only: a job spec is data, never code (no pickle, ever).
- `acks_late` + `task_reject_on_worker_lost`: a task whose worker dies is redelivered,
  so every task is idempotent (the job record decides what is due).
- Task events on, so Flower sees every step by name with the job id in its arguments.
- An explicit visibility timeout above the longest task and the longest countdown, or
  Redis redelivers messages that are still being worked on.
"""

from __future__ import annotations

from typing import Any

from runq.config.settings import Settings

QUEUE_RUNS = "runs"
QUEUE_TOOLS = "tools"

# Redis emulates priorities with one list per step (0, 3, 6, 9); a worker pops lower
# numbers first. New work (a job's start) goes last, so runs already in flight — their
# polls, tool calls and submits — are never stuck behind a backlog of thousands of starts.
# (A poll a webhook wakes is no message at all: it goes to the wake queue, `runs.wakes`.)
PRIORITY_IN_FLIGHT = 3
PRIORITY_NEW_JOB = 9


# kombu's Redis transport with one redis-py client per channel (`runq.worker.broker`),
# named, not imported: kombu imports it where a connection is made.
REDIS_TRANSPORT = "runq.worker.broker:Transport"


def transport_for(broker_url: str) -> str | None:
    """What Celery's `broker_transport` names for `broker_url`: runq's Redis transport
    for `redis://`, else None (kombu picks its own by the URL's scheme)."""
    return REDIS_TRANSPORT if broker_url.startswith("redis://") else None


def celery_config(settings: Settings, broker_url: str) -> dict[str, Any]:
    """The Celery settings for runq's Redis at `broker_url`.

    That Redis is the result backend and, unless `RUNQ_BROKER_URL` names another broker
    (RabbitMQ, say), the broker too.
    """
    transport = {
        "visibility_timeout": settings.visibility_timeout,
        "health_check_interval": 10,
    }
    broker = settings.broker_url or broker_url
    return {
        "broker_url": broker,
        # kombu's Redis transport, reusing its redis-py client (runq.worker.broker).
        "broker_transport": transport_for(broker),
        "result_backend": broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport,
        "result_backend_transport_options": {"health_check_interval": 10},
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": settings.task_events,
        "task_track_started": True,
        "result_expires": settings.result_expires,
        "result_extended": True,
        "task_default_queue": QUEUE_RUNS,
        "task_routes": {
            "runq.tools.*": {"queue": QUEUE_TOOLS},
            "runq.*": {"queue": QUEUE_RUNS},
        },
        # One message reserved per process: a step in flight (a tool call) then waits
        # behind at most the task each process is running, not a prefetched batch of starts.
        "worker_prefetch_multiplier": settings.worker_prefetch,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "timezone": "UTC",
        "enable_utc": True,
    }
