"""The core's objects for one worker process, built from settings by the Celery app.

The Celery app (`runq.worker.celery_app`) is the composition root: it owns one `Runtime`
per process (built on first use, built again after a fork) and hands it to the tasks,
which import the app, never the other way round. Nothing here imports the app: the
scheduler is given the app it sends messages with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery

from runq.config.celery import PRIORITY_IN_FLIGHT, PRIORITY_NEW_JOB
from runq.config.logging import register_secret
from runq.config.settings import Settings
from runq.errors import ConfigurationError, ToolError
from runq.runs import approvals
from runq.runs.approval_webhook import ApprovalWebhook
from runq.runs.backends import BackendFactory
from runq.runs.batcher.driver import Batcher, BatchLimits, link_clients
from runq.runs.batcher.queue import BatchQueue
from runq.runs.chains import Link, parse_chains
from runq.runs.conversations.history import history_from_settings
from runq.runs.delays import DelayedSteps
from runq.runs.events import EventLog
from runq.runs.fairness import WAITING_LEASE, admission_from_settings
from runq.runs.files.inputs import InputFiles
from runq.runs.files.produced import FileKeeper, FileLimits
from runq.runs.files.storage import configured_storage
from runq.runs.job import Job, Step
from runq.runs.keys import batcher_tick
from runq.runs.links import LinkServices
from runq.runs.metrics import Metrics
from runq.runs.redaction import redact_result
from runq.runs.replies import text
from runq.runs.retry import RetryPolicies, output_policy
from runq.runs.step_config import StepConfig
from runq.runs.steps import Steps
from runq.runs.store import JobStore
from runq.runs.sweeper import Sweeper
from runq.runs.tiers import policy_from_settings
from runq.runs.tool_step import ToolCallStep
from runq.runs.toolcalls import ToolCalls
from runq.runs.tools import registry
from runq.runs.wakes import WAKEABLE, WakeQueue
from runq.worker.admission import AdmissionPump
from runq.worker.discovery import resolve_base_url
from runq.worker.wake_runner import WakeRunner


class CeleryScheduler:
    """The core's `Scheduler`, on Celery: every future step is a message, or a wake.

    A step due soon is a message with a countdown; one due later waits in Redis
    (`runs.delays`) until the workers' pump sends it, so no worker holds it in memory.
    A poll due now (a webhook's early delivery) or brought by the pump goes to the wake
    queue instead (`runs.wakes`): a `runs` worker runs it in-process, without the
    broker's round for one message.
    """

    def __init__(
        self, app: Celery, delays: DelayedSteps | None = None, wakes: WakeQueue | None = None
    ) -> None:
        self.app = app
        self.delays = delays
        self.wakes = wakes

    def schedule(self, step: str, job_id: str, token: int, countdown: float) -> None:
        if self.delays is not None and self.delays.wants(countdown):
            self.delays.add(job_id, step, token, countdown)
            return
        if self.wakes is not None and countdown <= 0 and step in WAKEABLE:
            self.wakes.push(job_id, step, token)
            return
        self.send(step, job_id, token, countdown)

    def send(self, step: str, job_id: str, token: int, countdown: float = 0.0) -> None:
        options: dict[str, Any] = {"countdown": countdown} if countdown > 0 else {}
        options["priority"] = PRIORITY_NEW_JOB if step == "start" else PRIORITY_IN_FLIGHT
        self.app.send_task(f"runq.jobs.{step}", args=[job_id, token], ignore_result=True,
                           **options)  # fmt: skip

    def dispatch_tools(self, job: Job, token: int) -> None:
        # `ignore_result` on each send: runq's tasks store no result, and in a process
        # that is no Celery worker (the wake runner's own) Celery would otherwise
        # subscribe to each task's result channel, a SUBSCRIBE and an UNSUBSCRIBE a call.
        expected = len(job.pending_calls)
        for call in job.pending_calls:
            try:
                queue = registry.get(call["name"]).queue
            except ToolError:  # unknown tool: the tools queue reports it to the model
                queue = "tools"
            self.app.send_task(
                "runq.tools.call",
                args=[
                    job.id,
                    job.round,
                    call["call_id"],
                    call["name"],
                    call["arguments"],
                    expected,
                    token,
                ],
                queue=queue,
                priority=PRIORITY_IN_FLIGHT,
                ignore_result=True,
            )

    def publish_result(self, job: Job) -> None:
        """The result backend entry under the job id: `AsyncResult(job_id).get()` works.

        Its error texts are redacted once more on the way out (`runs.redaction`). Written
        as Celery's Redis backend writes a task's result (the same key, meta and
        encoding, `SETEX` then `PUBLISH` for a waiting `get()`), in one pipeline without
        the backend's `MULTI`/`EXEC` and its prior `GET` (which keeps a `SUCCESS` from
        being overwritten: a job's publication writes the same result every time): 2
        Redis commands instead of 5 (docs/benchmarks.md)."""
        backend = self.app.backend
        entry = self.result_entry(job)
        if entry is None:  # not a Redis backend: its own way
            backend.store_result(job.id, redact_result(job.result()), "SUCCESS")
            return
        backend.ensure(_write_result, (backend.client, *entry))

    def result_entry(self, job: Job) -> tuple[str, str, int] | None:
        """The result backend's entry for the job, as `publish_result` writes it, for the
        commit that ends the job to write and publish with it (the job store and the
        result backend are one Redis: `build_runtime`). None for another backend."""
        backend = self.app.backend
        if not hasattr(backend, "client"):
            return None
        meta = backend._get_result_meta(redact_result(job.result()), "SUCCESS", None, None)
        meta["task_id"] = job.id
        key = backend.get_key_for_task(job.id)
        return text(key), backend.encode(meta), int(backend.expires or 0)


def _write_result(client: redis.Redis, key: str, value: str, expires: int) -> None:
    pipe = client.pipeline(transaction=False)
    if expires:
        pipe.setex(key, int(expires), value)
    else:
        pipe.set(key, value)
    pipe.publish(key, value)
    pipe.execute()


@dataclass
class Runtime:
    redis: redis.Redis
    store: JobStore
    events: EventLog
    steps: Steps
    tools: ToolCalls
    tool_calls: ToolCallStep
    sweeper: Sweeper
    delays: DelayedSteps
    wakes: WakeQueue
    scheduler: CeleryScheduler
    admission: AdmissionPump | None = None  # the workers' side of fair admission
    batcher: Batcher | None = None
    batch_tick: float = 2.0
    local_runner: WakeRunner | None = None  # this process's wake runner, once started

    def send_batcher_tick(self) -> bool:
        """Send the batcher's task, at most once per `batch_tick` fleet-wide (runs.batcher)."""
        if self.batcher is None:
            return False
        if not self.redis.set(batcher_tick(), "1", nx=True, px=int(self.batch_tick * 1000)):
            return False
        if not self.batcher.queue.has_work():  # no batch-tier job anywhere: no task
            return False
        self.scheduler.app.send_task("runq.batches.tick")
        return True

    def send_due_steps(self) -> int:
        """Send every delayed step that is due; returns how many (the workers' pump).

        Polls and safety looks go to this process's wake runner while it has free
        threads, the rest to the wake queue in one push (`runs.wakes`); other steps go
        as tasks."""
        due = self.delays.pop_due()
        woken = [item for item in due if item.step in WAKEABLE]
        if self.local_runner is not None:  # this process's own wake runner first
            woken = self.local_runner.offer(woken)
        self.wakes.push_many(woken)
        for item in due:
            if item.step not in WAKEABLE:
                self.scheduler.send(item.step, item.job_id, item.token)
        return len(due)


def build_runtime(app: Celery, settings: Settings) -> Runtime:
    """Every object a step needs, wired once: the one place that knows them all."""
    client = redis.Redis.from_url(str(app.conf.result_backend), health_check_interval=10)
    store = JobStore(
        client,
        events_maxlen=settings.events_maxlen,
        result_ttl=settings.result_expires,
        events_ttl=settings.result_expires,
    )
    events = EventLog(client, maxlen=settings.events_maxlen, ttl=settings.result_expires)
    chains = parse_chains(settings.chains)
    _register_keys(settings, chains)
    factory = BackendFactory(
        base_url=resolve_base_url(settings),
        api_key=settings.api_key_value(),
        timeout=settings.request_timeout,
        registry=registry,
        inputs=InputFiles(client),
    )
    metrics = Metrics(
        client,
        known_models={settings.model}
        | {link.model for chain in chains.values() for link in chain if link.model},
        flush_interval=settings.metrics_flush_interval,  # summed per process (runs.metrics)
    )
    registry.default_isolation = settings.tool_isolation
    tools = ToolCalls(client, registry, events, metrics=metrics)
    config = StepConfig(
        poll_interval_min=settings.poll_interval_min,
        poll_interval_max=settings.poll_interval_max,
        request_timeout=settings.request_timeout,
        tool_errors_fail_job=settings.tool_errors_fail_job,
        safety_poll_interval=settings.safety_poll_interval,
        safety_poll_max=settings.safety_poll_max,
        safety_poll_growth=settings.safety_poll_growth,
        webhooks=settings.mode == "webhook",
    )
    services = LinkServices(
        client,
        chains=chains,
        default_chain=settings.chain,
        breaker_failures=settings.breaker_failures,
        breaker_open_seconds=settings.breaker_open_seconds,
        default_rpm=settings.rpm,
        default_tpm=settings.tpm,
        cache_ttl=settings.result_expires,
        files=_file_keeper(client, settings),
    )
    delays = DelayedSteps(client)
    wakes = WakeQueue(client)
    scheduler = CeleryScheduler(app, delays, wakes)
    tier_policy = policy_from_settings(settings)
    batcher = Batcher(
        BatchQueue(client, outcome_ttl=settings.result_expires),
        store,
        scheduler,
        link_clients(chains, resolve_base_url(settings), settings.api_key_value(),
                     settings.request_timeout),
        limits=BatchLimits(
            max_lines=settings.batch_max_lines, max_bytes=settings.batch_max_bytes,
            max_age=settings.batch_max_age, poll_interval=settings.batch_poll_interval,
        ),
        request_timeout=settings.request_timeout,
    )  # fmt: skip
    steps = Steps(
        store,
        factory,
        scheduler,
        tools.outputs,
        config=config,
        retry=RetryPolicies(
            output=output_policy(settings.output_retries), test_mode=settings.test_mode
        ),
        metrics=metrics,
        services=services,
        history=history_from_settings(client, settings),
        tier_policy=tier_policy,
    )
    # Whatever RUNQ_FAIR_ADMISSION says (the producers' choice), a worker admits the jobs
    # that wait: a producer and a worker configured differently never strand a job.
    admission = AdmissionPump(admission_from_settings(client, settings), scheduler, steps, events)
    waits = admission.admission
    sweeper = Sweeper(
        store,
        scheduler,
        tools,
        interval=settings.sweep_interval,
        waiting=waits.is_waiting,
        waiting_extension=WAITING_LEASE,
        on_gone=waits.release,
    )
    return Runtime(
        redis=client,
        store=store,
        events=events,
        steps=steps,
        tools=tools,
        tool_calls=ToolCallStep(
            store,
            tools,
            scheduler,
            submit=lambda job_id, token: steps.run(Step.SUBMIT_TOOL_OUTPUTS, job_id, token),
            approvals=approvals.for_worker(client),
            webhook=_approval_webhook(client, settings),
        ),
        sweeper=sweeper,
        delays=delays,
        wakes=wakes,
        scheduler=scheduler,
        admission=admission,
        batcher=batcher,
        batch_tick=settings.batch_tick,
    )


def _approval_webhook(client: redis.Redis, settings: Settings) -> ApprovalWebhook | None:
    """The signed `approval.requested` webhook, when RUNQ_APPROVAL_WEBHOOK_URL is set (its
    secret is then required: an unsigned delivery could be forged by anyone)."""
    url, secret = settings.approval_webhook_url, settings.approval_webhook_secret
    if url is None:
        return None
    if secret is None:
        raise ConfigurationError(
            "RUNQ_APPROVAL_WEBHOOK_URL is set without RUNQ_APPROVAL_WEBHOOK_SECRET "
            "(a whsec_<base64> secret the receiver verifies deliveries with)"
        )
    register_secret(secret.get_secret_value())
    return ApprovalWebhook(client, url, secret.get_secret_value(), ttl=settings.result_expires)


def _file_keeper(client: redis.Redis, settings: Settings) -> FileKeeper:
    """Where the files runs produce are kept: RUNQ_FILES_DIR, RUNQ_FILES_S3_BUCKET, else
    Redis (as long as job records), within RUNQ_FILE_MAX_BYTES per file and
    RUNQ_JOB_FILES_MAX_BYTES per job."""
    storage = configured_storage(client, settings)
    limits = FileLimits(per_file=settings.file_max_bytes, per_job=settings.job_files_max_bytes)
    return FileKeeper(storage, limits)


def _register_keys(settings: Settings, chains: dict[str, list[Link]]) -> None:
    """Every key this worker may send is a secret to redact, in logs and in job data.

    A backend that refuses a key may quote it in its error, and that error becomes the
    job's `error` and `attempts`; the patterns of `config.logging` catch `sk-…` keys,
    not a local server's key of any other shape.
    """
    if settings.openai_api_key is not None:
        register_secret(settings.openai_api_key.get_secret_value())
    for links in chains.values():
        for link in links:
            if link.api_key_env:
                register_secret(os.environ.get(link.api_key_env))
