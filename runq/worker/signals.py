"""Celery signal handlers: logging in every process, log context per task, startup checks.

Handlers that need the app (the startup check, the sweeper thread, the reset after a
fork) are connected by `connect(app)`, which the app's module calls: this module never
imports the app, so the imports run one way.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from celery import signals

from runq.config.celery import QUEUE_RUNS
from runq.config.logging import configure_logging
from runq.config.settings import get_settings
from runq.errors import ConfigurationError
from runq.runs import chain_catalog, tool_catalog
from runq.runs.metrics_buffer import flush_all
from runq.runs.tools import registry
from runq.worker.wake_process import WakeProcess
from runq.worker.wake_runner import WakeRunner

if TYPE_CHECKING:
    from runq.worker.runtime import Runtime

log = structlog.get_logger("runq.worker")


class WorkerApp(Protocol):
    """What the handlers need of the Celery app (`runq.worker.celery_app.RunqCelery`)."""

    @property
    def runtime(self) -> Runtime: ...

    def reset_runtime(self) -> None: ...

    def redis_url(self) -> str | None: ...


def connect(app: WorkerApp) -> None:
    """Connect the handlers that act on `app`'s runtime (once per app)."""
    uid = f"runq-{id(app)}"

    def check_worker(sender: Any = None, **_: Any) -> None:
        _check_worker(app)

    runners: list[WakeRunner | WakeProcess] = []

    def start_sweeper(sender: Any = None, **_: Any) -> None:
        if app.runtime.admission is not None:  # its share of the derived window
            controller = getattr(sender, "controller", None)
            app.runtime.admission.slots = int(getattr(controller, "concurrency", 0) or 1)
        _start_sweeper(app.runtime, str(getattr(sender, "hostname", "worker")))
        if QUEUE_RUNS in _consumed_queues(sender):
            runners.append(_start_wakes(app, sender))

    def stop_wake_runners(**_: Any) -> None:
        """Warm shutdown: the steps the runner is running finish, as Celery's tasks do;
        then the metrics this process summed go out (runs.metrics_buffer)."""
        while runners:
            runners.pop().stop()
        flush_all()

    def admit_next(task: Any = None, args: Any = None, **_: Any) -> None:
        """A start step begins: the next waiting job takes its place (runs.fairness)."""
        if getattr(task, "name", None) != "runq.jobs.start" or not args:
            return
        admission = app.runtime.admission
        if admission is None:
            return
        try:
            admission.job_starting(str(args[0]))
        except Exception:  # never the step's failure: the pump admits on its next turn
            log.exception("admission.failed", job_id=args[0])

    def after_fork(**_: Any) -> None:
        """A forked child must not reuse the parent's sockets."""
        from runq.runs.backends.client import reset_clients

        reset_clients()
        app.reset_runtime()

    # weak=False: these closures have no other reference that would keep them alive.
    signals.worker_init.connect(check_worker, weak=False, dispatch_uid=uid + "-check")
    signals.worker_ready.connect(start_sweeper, weak=False, dispatch_uid=uid + "-sweeper")
    signals.worker_shutdown.connect(stop_wake_runners, weak=False, dispatch_uid=uid + "-wakes")
    signals.worker_process_init.connect(after_fork, weak=False, dispatch_uid=uid + "-fork")
    signals.task_prerun.connect(admit_next, weak=False, dispatch_uid=uid + "-admission")


@signals.celeryd_init.connect
@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    """Celery must not install its own handlers: structlog renders every record."""
    configure_logging(get_settings(), process="worker")


@signals.worker_process_shutdown.connect
def _flush_metrics(**_: Any) -> None:
    """A prefork child's exit sends its summed metrics: it leaves by `os._exit`, which
    skips `atexit` (runs.metrics_buffer)."""
    flush_all()


def _check_worker(app: WorkerApp) -> None:
    """Refuse to start a worker that could not do any work, with a message saying why."""
    try:
        settings = get_settings()
    except ConfigurationError as exc:
        _refuse(str(exc))
    if app.redis_url() is None:
        _refuse(
            "no Redis configured: set REDIS_URL=redis://HOST:PORT/DB, or start the embedded "
            "stack with `runq up` in this folder"
        )
    from runq.worker.discovery import resolve_base_url

    if not (settings.openai_api_key or resolve_base_url(settings)):
        _refuse(
            "no model backend configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for an "
            "OpenAI-compatible server such as the sandbox: `runq sandbox --port 8765` then "
            "OPENAI_BASE_URL=http://127.0.0.1:8765/v1), or use `runq up`, which starts one"
        )
    from runq.runs.tools import load_tool_modules
    from runq.worker.discovery import resolve_redis_url

    try:
        load_tool_modules(settings.tool_modules)
    except ConfigurationError as exc:
        # Celery logs and swallows an exception from a signal handler: a worker without
        # its tools would start and fail every job that calls one. SystemExit stops it.
        _refuse(str(exc))
    # Producers refuse a job naming a tool or a chain no worker has.
    tool_catalog.publish_to(resolve_redis_url(settings), registry)
    chain_catalog.publish_to(resolve_redis_url(settings), settings.chains)
    from runq.runs.budgets import parse_budgets

    try:  # a bad RUNQ_BUDGETS would fail every admission, not the start
        parse_budgets(settings.budgets)
    except ConfigurationError as exc:
        _refuse(str(exc))
    log.info("worker.ready_check_passed", tool_modules=settings.tool_modules)


def _refuse(message: str) -> None:
    print(f"runq worker: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


# How often each worker sends the delayed steps that became due (runs.delays).
PUMP_INTERVAL = 0.5


def _start_sweeper(rt: Runtime, owner: str) -> None:
    """Each worker runs, in a daemon thread, the pump of delayed steps and the sweeper.

    The pump's pop is atomic, so each due step is sent once fleet-wide; a Redis lock makes
    one sweep per interval fleet-wide.
    """

    def loop() -> None:
        stop = threading.Event()
        next_sweep = time.monotonic() + rt.sweeper.interval
        next_catalogs = time.monotonic() + tool_catalog.REFRESH_EVERY
        while not stop.wait(PUMP_INTERVAL):
            try:
                rt.send_due_steps()
                if rt.admission is not None:  # waiting jobs, in their tenants' turn
                    rt.admission.tick(owner)
                rt.send_batcher_tick()  # the batcher's task, once per tick fleet-wide
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + rt.sweeper.interval
                    rt.sweeper.sweep_if_due(owner)
                if time.monotonic() >= next_catalogs:  # still here: tools and chains
                    next_catalogs = time.monotonic() + tool_catalog.REFRESH_EVERY
                    tool_catalog.publish(rt.redis, registry, quiet=True)
                    chain_catalog.publish(rt.redis, get_settings().chains, quiet=True)
            except Exception:  # a Redis blip must not kill the thread; the next turn retries
                log.exception("sweeper.failed")

    threading.Thread(target=loop, name="runq-sweeper", daemon=True).start()


def _consumed_queues(consumer: Any) -> set[str]:
    """The queues this worker takes (`-Q`); Celery's default when it says none."""
    task_consumer = getattr(consumer, "task_consumer", None)
    queues = getattr(task_consumer, "queues", None) or []
    names = {str(getattr(q, "name", "")) for q in queues}
    return names or {QUEUE_RUNS}


def _wake_runner_in_a_child(consumer: Any) -> bool:
    """Whether the wake runner gets a process of its own (`RUNQ_WAKE_RUNNER`): by default
    unless the pool is prefork, whose main process runs no task of its own."""
    where = get_settings().wake_runner
    if where != "auto":
        return where == "process"
    pool = getattr(getattr(consumer, "controller", None), "pool", None)
    return "prefork" not in type(pool).__module__


def _start_wakes(app: WorkerApp, consumer: Any) -> WakeRunner | WakeProcess:
    """The wake runner, in a child interpreter (`runq.worker.wake_process`) on the Redis
    this worker uses (found through `runq up`'s state, or given to Celery, as well as
    REDIS_URL), or in this process."""
    if _wake_runner_in_a_child(consumer):
        url = app.redis_url()
        return WakeProcess(env={"REDIS_URL": url} if url else None).start()
    return _start_wake_runner(app.runtime)


def _start_wake_runner(rt: Runtime) -> WakeRunner:
    """A worker that takes the `runs` queue also runs the polls of the wake queue
    (`runs.wakes`): a webhook's wake or a safety poll, in-process, without a message."""
    runner = WakeRunner(rt.wakes, rt.steps.run, threads=get_settings().wake_threads)
    log.info("wake.runner_started", threads=runner.threads)
    rt.local_runner = runner.start()  # the pump hands it due steps first
    return runner


# Log context that travels with a message, from the producer (or the step that scheduled
# it) to the task that runs it, in a header of its own.
CONTEXT_HEADER = "runq_context"
TRAVELLING = ("job_id", "attempt", "link", "run_id", "request_id")


@signals.before_task_publish.connect
def _send_context(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is None:
        return
    bound = structlog.contextvars.get_contextvars()
    context = {k: bound[k] for k in TRAVELLING if bound.get(k) is not None}
    if context:
        headers[CONTEXT_HEADER] = context


@signals.task_prerun.connect
def _bind_context(task_id: str | None = None, task: Any = None, args: Any = None, **_: Any) -> None:
    structlog.contextvars.clear_contextvars()
    context: dict[str, Any] = {}
    request = getattr(task, "request", None)
    carried = getattr(request, CONTEXT_HEADER, None) if request is not None else None
    if isinstance(carried, dict):
        context.update({k: v for k, v in carried.items() if k in TRAVELLING})
    if args:
        context["job_id"] = args[0]
    context.update(task_id=task_id, task_name=getattr(task, "name", None))
    structlog.contextvars.bind_contextvars(process="worker", **context)


@signals.task_postrun.connect
def _clear_context(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(process="worker")
