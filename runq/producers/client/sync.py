"""The Python API for producers: `submit(...) -> JobHandle`.

    from runq import submit

    handle = submit("Summarise our refund policy", tools=["calculator"])
    print(handle.result(timeout=60)["output_text"])

A producer writes the job record, then sends one `runq.jobs.start` message; everything
else happens in workers. With fair admission (the default, `runs.fairness`) it puts the
job in its tenant's waiting list instead, and a worker sends the start in its turn.
A bad job is refused here, before anything is enqueued, with
an `InvalidJobError` that names the option (a tool no worker has, too: see
`runs.tool_catalog`). With an `idempotency_key`, submitting the same job twice returns
the same job; the same key with a different job raises `IdempotencyConflictError`.
`Client.jobs()` lists recent jobs, newest first.

A job may ask for structured output (`output_schema=` a JSON schema, or `output_type=`
a pydantic model class) and set model settings (`temperature=`, `reasoning=`,
`service_tier=`...; see `runs.model_settings`). `JobHandle.output()` returns the parsed
answer, an instance of `output_type` when one was given; `result()` stays the dict.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

from runq.config.celery import PRIORITY_NEW_JOB
from runq.config.settings import Settings, get_settings
from runq.errors import (
    BudgetExceededError,
    ConfigurationError,
    InvalidJobError,
    JobTimeoutError,
)
from runq.producers.client import reconnect
from runq.producers.client.output_types import schema_options, typed_output
from runq.runs import hosted_tools, model_settings
from runq.runs.events import Event, EventLog
from runq.runs.files import inputs as input_files
from runq.runs.files.produced import JobFile
from runq.runs.files.produced import load as load_files
from runq.runs.job import TERMINAL, Job, JobSpec
from runq.runs.recent import JobSummary, recent_jobs
from runq.runs.store import JobStore
from runq.worker.discovery import resolve_redis_url

if TYPE_CHECKING:
    import redis
    from celery import Celery

    from runq.producers.client._resp import QuickReads
    from runq.runs.approvals import Approval, Approvals
    from runq.runs.fairness import Admission

# Until a worker takes the job, the sweeper waits this long before re-sending its start.
SUBMIT_LEASE = 60.0
# A producer reads the workers' tool names again after this long (a batch of submits
# asks Redis once, and a worker started meanwhile is seen within seconds).
KNOWN_TOOLS_FOR = 5.0


def enqueue_start(app: Celery, job_id: str) -> None:
    """Send a new job's first step; it queues behind the steps of runs already in flight."""
    # runq's tasks store no result (a job's result goes under the job id), so Celery must
    # not subscribe a producer to the task's result channel: without `ignore_result`
    # every send costs a SUBSCRIBE, an UNSUBSCRIBE and a pub/sub connection.
    app.send_task("runq.jobs.start", args=[job_id, 0], priority=PRIORITY_NEW_JOB,
                  ignore_result=True)  # fmt: skip


def travelling_context() -> dict[str, Any]:
    """The producer's log context a job's start message carries (`request_id`...): sent
    by a worker under fair admission, so it travels in the job's waiting entry."""
    import structlog

    from runq.worker.signals import TRAVELLING

    bound = structlog.contextvars.get_contextvars()
    return {k: bound[k] for k in TRAVELLING if bound.get(k) is not None}


def enqueue_cancel(app: Celery, job_id: str) -> None:
    """Send the task that acts on a cancel request at once, whatever step the job is in."""
    app.send_task("runq.jobs.cancel", args=[job_id, 0], ignore_result=True)


def enqueue_decided_call(app: Celery, job: Job, approval: Approval) -> bool:
    """Send the tool task of a call a person decided (`runs.approvals`): it runs the tool
    or stores the denial, and the round goes on. False when the job's round moved on (a
    timeout, a cancel): nothing is sent, the job's own steps took care of it."""
    if job.terminal or job.round != approval.round:
        return False
    expected = len(job.pending_calls)
    app.send_task(
        "runq.tools.call",
        args=[job.id, approval.round, approval.call_id, approval.name, approval.arguments,
              expected, job.token],
        queue=approval.queue, ignore_result=True,
    )  # fmt: skip
    return True


def require_redis_url(settings: Settings, doing: str = "submit to or read from") -> str:
    """REDIS_URL, or the Redis of a `runq up` in this folder; else an error that says what
    the caller wanted the Redis for (`doing`: "read from", "submit to", ...)."""
    url = resolve_redis_url(settings)
    if not url:
        raise ConfigurationError(
            f"no Redis to {doing}: set REDIS_URL=redis://HOST:PORT/DB, or run `runq up` "
            "in this folder first"
        )
    return url


class Client:
    """A connection to one runq deployment (its Redis)."""

    def __init__(self, redis_url: str | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.redis_url = redis_url or require_redis_url(self.settings)
        self._known_tools: tuple[float, set[str] | None] = (-math.inf, None)
        # Chains the workers published, as last read; re-read only for a name not in it.
        self._known_chains: set[str] = set()

    # The connections are made on first use, so a command that only reads a few keys
    # (`reads`) never pays for importing redis-py.
    @cached_property
    def redis(self) -> redis.Redis:
        import redis

        return redis.Redis.from_url(
            self.redis_url, health_check_interval=10, retry=reconnect.command_retry()
        )

    @cached_property
    def store(self) -> JobStore:
        s = self.settings
        return JobStore(self.redis, events_maxlen=s.events_maxlen,
                        events_ttl=s.result_expires, result_ttl=s.result_expires)  # fmt: skip

    @cached_property
    def events(self) -> EventLog:
        s = self.settings
        return EventLog(self.redis, maxlen=s.events_maxlen, ttl=s.result_expires)

    @cached_property
    def reads(self) -> QuickReads:
        """GET and MGET that start fast (see `client._resp`), for a short command's
        one thread: it holds a single socket."""
        from runq.producers.client._resp import QuickReads

        return QuickReads(self.redis_url, lambda: self.redis)

    @cached_property
    def admission(self) -> Admission | None:
        """Fair admission (`runs.fairness`): new jobs wait for their tenant's turn and
        their budgets. None when RUNQ_FAIR_ADMISSION is off: jobs start first in, first out."""
        if not self.settings.fair_admission:
            return None
        from runq.runs.fairness import admission_from_settings

        return admission_from_settings(self.redis, self.settings)

    def check_budget(self, spec: JobSpec) -> None:
        """Refuse a job a `fail` budget has no room for (`BudgetExceededError`, which the
        gateway answers 429 with `Retry-After`); a `wait` budget holds it at admission."""
        admission = self.admission
        if admission is None or not admission.budgets.budgets:
            return
        now = time.time()
        state = admission.budgets.refusing(spec, now)
        if state is not None:
            raise BudgetExceededError(state, max(1.0, state["resets_at"] - now))

    @cached_property
    def app(self) -> Celery:
        """The Celery app, built on first use: reading jobs never pays for importing it."""
        from runq.worker.celery_app import make_app

        return make_app(self.redis_url)

    def spec(self, input: str | list[dict[str, Any]], **options: Any) -> JobSpec:
        """A validated spec: settings give the defaults, `options` override them."""
        return self.prepare(input, **options)[0]

    def prepare(
        self, input: str | list[dict[str, Any]], **options: Any
    ) -> tuple[JobSpec, list[input_files.InputFile]]:
        """The validated spec and the input files to stage (read, hashed and capped here).

        `tools` may name function tools and hosted tools (`code_interpreter`,
        `web_search`, `{"type": "mcp", ...}`): `runs.hosted_tools.split` sorts them.
        `files` are paths, `(name, bytes)` pairs or `{name, content}` objects.
        """
        options = _sorted_tools(options)
        files = options.pop("files", None)
        s = self.settings
        staged = (
            input_files.prepare(files, s.file_max_bytes, s.job_files_max_bytes) if files else []
        )
        if staged:
            options["files"] = [f.meta() for f in staged]
        defaults: dict[str, Any] = {
            "backend": s.backend,
            "model": s.model,
            "mode": s.mode,
            "deadline": s.job_deadline,
            "max_tool_rounds": s.max_tool_rounds,
            "multitask": s.multitask,  # runs.multitask: RUNQ_MULTITASK unless the job says
        }
        for name, value in options.items():
            if value is not None:
                defaults[name] = value
        unknown = set(defaults) - set(JobSpec.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown job option(s): {', '.join(sorted(unknown))}")
        if options.get("continue_job"):
            # The earlier job must exist; the worker waits for it to end, then continues
            # its conversation on the same backend.
            earlier = self.store.get(options["continue_job"])
            if options.get("backend") is None:
                defaults["backend"] = earlier.spec.backend
        spec = JobSpec(input=input, **defaults).validate()
        if spec.chain:
            self._check_chain(spec.chain)
        self._check_chain_settings(spec)
        if spec.tools:
            self._check_tools(spec.tools)
        return spec, staged

    def _check_chain(self, name: str) -> None:
        """A chain the workers published (`runs.chain_catalog`) or this process's own
        settings name; one neither knows is refused with the worker's own message.

        The union, not the catalog alone: a worker that has just started with a new
        chain may not have published it yet when its producer submits the first job.
        """
        from runq.runs import chain_catalog

        if name in self._known_chains or name in self.settings.chains:
            return  # known already: no Redis read on every submit
        self._known_chains = chain_catalog.published_names(self.redis) or set()
        known = self._known_chains | set(self.settings.chains)
        if name not in known:
            listed = ", ".join(sorted(known)) or "none configured"
            raise InvalidJobError("chain", f"unknown chain {name!r} (chains: {listed})")

    def _check_chain_settings(self, spec: JobSpec) -> None:
        """The link a chained job starts on must carry its settings, as the job's own
        backend must (`JobSpec.validate`); a later link that cannot is skipped by the
        worker with the reason in `attempts`."""
        name = spec.chain or self.settings.chain
        if not name or name not in self.settings.chains:
            return
        # Here, not at the top: runs.chains imports redis-py, and a command that only
        # reads a record (`runq status`, `runq result`) must not pay for it.
        from runq.runs.chains import MODEL, parse_chains

        links = parse_chains({name: self.settings.chains[name]})[name]
        first = next((link for link in links if link.kind == MODEL), None)
        if first is None:
            return
        values = model_settings.effective(spec, first.settings)
        model_settings.refuse_unsupported(first.backend, values, f" of chain {name!r}")
        hosted_tools.refuse_unsupported(first.backend, spec.hosted_tools, f" of chain {name!r}")

    def known_tools(self) -> set[str] | None:
        """The tools a job may name: those the workers published (`runs.tool_catalog`),
        else those this process registered itself; None when neither has any, and then
        a job's tools are not checked here (a worker reports an unknown one to the model).
        """
        from runq.runs import tool_catalog
        from runq.runs.tools import registry

        read_at, names = self._known_tools
        if time.monotonic() - read_at > KNOWN_TOOLS_FOR:
            names = tool_catalog.published_names(self.redis)
            self._known_tools = (time.monotonic(), names)
        if names is None and len(registry):
            names = set(registry.names())
        return names

    def _check_tools(self, tools: list[str]) -> None:
        known = self.known_tools()
        if known is None:
            return
        unknown = [name for name in dict.fromkeys(tools) if name not in known]
        if unknown:
            listed = ", ".join(repr(name) for name in unknown)
            raise InvalidJobError(
                "tools",
                f"unknown tool {listed}; choose from {', '.join(sorted(known))} "
                "(`runq tools` describes them)",
            )

    def submit(
        self,
        input: str | list[dict[str, Any]],
        *,
        idempotency_key: str | None = None,
        job_id: str | None = None,
        **options: Any,
    ) -> JobHandle:
        """Validate, write the record and enqueue the start. `output_type=` a pydantic
        model class asks for its JSON schema and makes `JobHandle.output()` return one."""
        output_type = schema_options(options)
        spec, staged = self.prepare(input, **options)
        self.check_budget(spec)
        try:
            input_files.stage(self.redis, spec.tenant, staged, spec.deadline)
            return self._submit(spec, idempotency_key, job_id, output_type)
        except Exception as exc:
            full = reconnect.full_error(exc, self.redis_url)
            if full is not None:
                raise full from None  # one clear line, not a Lua traceback
            raise

    def _submit(
        self,
        spec: JobSpec,
        idempotency_key: str | None,
        job_id: str | None,
        output_type: type[Any] | None,
    ) -> JobHandle:
        # Build the Celery app (its first use imports Celery) before the record exists:
        # the gap between writing a job and sending its start, which only the sweeper
        # closes if the producer dies in it, stays one send wide.
        app = self.app
        job = Job.new(spec, job_id)
        admission = self.admission
        created = self.store.create(
            job,
            # (a job that waits for its tenant's turn says so as it enters admission)
            [{"type": "job.status", "status": job.status}],
            lease_until=time.time() + SUBMIT_LEASE,
            idempotency_key=idempotency_key,
        )  # IdempotencyConflictError when the key names a job asked differently
        if created is None:  # a job with this id exists already (a deterministic id)
            return JobHandle(job.id, self, output_type=output_type)
        if created != job.id:  # the idempotency key was used before, for this same job
            return JobHandle(created, self, output_type=output_type)
        # With admission, a worker sends its start in its tenant's turn, with this log
        # context; uncontended, the job is admitted at once and its start sent here.
        if admission is None or admission.enter(job, travelling_context()):
            enqueue_start(app, job.id)
        return JobHandle(job.id, self, output_type=output_type)

    def get_job(self, job_id: str, output_type: type[Any] | None = None) -> JobHandle:
        """A handle on an earlier job; `output_type` makes `output()` return that class."""
        self.store.get(job_id)  # raises JobNotFoundError
        return JobHandle(job_id, self, output_type=output_type)

    def cancel(self, job_id: str) -> str:
        """Ask job `job_id` to stop; returns the status it was in. See `JobHandle.cancel`."""
        status = self.store.request_cancel(job_id)
        if status not in TERMINAL:
            enqueue_cancel(self.app, job_id)
        return status

    @cached_property
    def approval_calls(self) -> Approvals:
        from runq.runs.approvals import Approvals  # the tools' modules load on first use

        return Approvals(self.redis, ttl=self.settings.result_expires)

    def approvals(self, job_id: str) -> list[dict[str, Any]]:
        """The job's tool calls that wait (or waited) for a person, oldest first."""
        return [a.view() for a in self.approval_calls.all(job_id)]

    def decide(
        self, job_id: str, call_id: str, approve: bool, reason: str | None = None
    ) -> dict[str, Any]:
        """Approve or deny one waiting call; the job resumes (see `JobHandle.approve`)."""
        approval = self.approval_calls.decide(job_id, call_id, approve, reason)
        enqueue_decided_call(self.app, self.store.get(job_id), approval)
        return approval.view()

    def jobs(
        self, status: str | None = None, limit: int = 20, tenant: str | None = None
    ) -> list[JobSummary]:
        """Recent jobs, newest first: of one `tenant` (None: every job), with one `status`.

        Jobs whose record expired (`result_expires` after they ended) are not listed.
        """
        return recent_jobs(self.redis, limit=limit, status=status, tenant=tenant)

    def import_conversation(
        self,
        *,
        thread_id: str | None = None,
        transcript: list[dict[str, Any]] | str | None = None,
        conversation: str | None = None,
        tenant: str | None = None,
        link: str | None = None,
    ) -> str:
        """A new runq conversation from an Assistants thread (read from the configured
        server; `link` names a configured assistants link) or a transcript (JSONL text or
        a list of turns); returns its id, for `submit(..., conversation=id)`."""
        from runq.producers.client import conversations

        store = conversations.conversation_store(self.redis, self.settings)
        record = conversations.import_conversation(
            store, self.settings, thread_id=thread_id, transcript=transcript,
            conversation=conversation, tenant=tenant, link=link,
        )  # fmt: skip
        return record.id

    def export_conversation(self, conversation: str, tenant: str | None = None) -> str:
        """The conversation's JSONL transcript (`JobNotFoundError` for another tenant's)."""
        from runq.producers.client import conversations

        store = conversations.conversation_store(self.redis, self.settings)
        return conversations.export_conversation(store, conversation, tenant)


class JobHandle:
    """A producer's view of one job."""

    def __init__(
        self, job_id: str, client: Client, *, output_type: type[Any] | None = None
    ) -> None:
        self.id = job_id
        self.client = client
        self.output_type = output_type  # the pydantic model `output()` returns

    def __repr__(self) -> str:
        return f"JobHandle({self.id!r})"

    def job(self) -> Job:
        """The full job record."""
        return self.client.store.get(self.id)

    def status(self) -> str:
        return self.job().status

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the job to end and return its result (also for failed or cancelled jobs).

        Raises `JobTimeoutError` when `timeout` seconds pass first. A Redis restart
        meanwhile is waited out (`reconnect`); `RedisUnavailableError` if Redis stays
        down past `timeout`.
        """
        outage = reconnect.Outage(self.client.redis_url, timeout)
        job = reconnect.call(outage, self.job)
        if job.terminal:
            return job.result()
        for event in self.events(timeout=outage.remaining()):
            if event.final:
                return dict(event.data["result"])
        job = reconnect.call(reconnect.Outage(self.client.redis_url, 5.0), self.job)
        if job.terminal:
            return job.result()
        raise JobTimeoutError(f"job {self.id} did not finish within {timeout}s")

    def files(self) -> list[JobFile]:
        """The files the job's run produced (name, bytes, content_type, sha256, content),
        each checked against its hash; `JobFile.save(dir)` writes one. Files over the
        caps are not kept (the result's `files` says why). Read once the job has ended."""
        job = self.job()
        return load_files(job.id, job.files, redis=self.client.redis, settings=self.client.settings)

    def output(self, timeout: float | None = None) -> Any:
        """Wait for the job and return its parsed answer (`result()["output_parsed"]`):
        an instance of `output_type` when the job was submitted with one, else the JSON
        value. Raises `JobFailedError` when the job did not succeed (`.result` has the
        attempts), `JobTimeoutError` when `timeout` passes first."""
        return typed_output(self.id, self.result(timeout), self.output_type)

    def events(self, after: str = "0-0", timeout: float | None = None) -> Iterator[Event]:
        """The job's events from the start (or after a stream id), live, ending at the final
        one; a Redis restart is waited out within `timeout` (see `reconnect`)."""
        client = self.client
        return reconnect.follow(client.events, client.redis_url, self.id, after, timeout)

    def cancel(self) -> str:
        """Ask the job to stop: it ends `cancelled` within a second, whatever step it is
        in, and its run is cancelled at the backend. Returns the status the job was in.

        A job already cancelled returns `cancelled` (cancelling twice is harmless); one
        that already succeeded or failed raises `JobAlreadyEndedError` (`.status` says
        how it ended): its result stands, which the caller should know.
        """
        return self.client.cancel(self.id)

    def approvals(self) -> list[dict[str, Any]]:
        """The job's tool calls that wait (status `pending`) or waited for a person."""
        return self.client.approvals(self.id)

    def approve(self, call_id: str) -> dict[str, Any]:
        """Let the waiting call `call_id` run; the job resumes. Returns the decided call.

        Decided once: `ApprovalDecidedError` if it was decided before (by a person or its
        timeout), `ApprovalNotFoundError` if no such call waits, `JobAlreadyEndedError`
        if the job ended meanwhile."""
        return self.client.decide(self.id, call_id, True)

    def deny(self, call_id: str, reason: str | None = None) -> dict[str, Any]:
        """Refuse the waiting call `call_id`: its tool never runs, and the model reads
        `{"error": "denied by a person: <reason>"}` as its output. See `approve`."""
        return self.client.decide(self.id, call_id, False, reason)


def _sorted_tools(options: dict[str, Any]) -> dict[str, Any]:
    """`tools` split into function tool names, hosted tools and vector stores."""
    if options.get("tools") is None:
        return dict(options)
    names, hosted, stores = hosted_tools.split(options["tools"])
    hosted = [*(options.get("hosted_tools") or []), *hosted]
    stores = [*(options.get("vector_store_ids") or []), *stores]
    return {**options, "tools": names or None, "hosted_tools": hosted or None,
            "vector_store_ids": stores or None}  # fmt: skip


_default: Client | None = None


def default_client() -> Client:
    global _default
    if _default is None:
        _default = Client()
    return _default


def submit(input: str | list[dict[str, Any]], **options: Any) -> JobHandle:
    """Enqueue a conversation job on the default deployment; see `Client.submit`."""
    return default_client().submit(input, **options)


def get_job(job_id: str, output_type: type[Any] | None = None) -> JobHandle:
    return default_client().get_job(job_id, output_type)
