"""The Python API for async web apps (FastAPI, Starlette, Django async views, aiohttp).

    from runq.producers.client.aio import AsyncClient

    client = AsyncClient()
    handle = await client.submit("Summarise our refund policy")
    async for event in handle.events():
        ...
    result = await handle.result(timeout=60)

The same code paths as `client.sync`, on `redis.asyncio`:

- the spec is built and validated by `Client.spec` (the sync client), so defaults and
  `InvalidJobError` are identical; it runs in a thread when it must read Redis (the
  earlier job of `continue_job`, the workers' tool names);
- `jobs()` (recent jobs) runs the sync client's listing in a thread;
- the job record is written by the job store's own create script (`CREATE`),
  registered on the async connection, with the keys and arguments the store's
  `create_call` builds (not re-implemented: a change of the store's layout reaches
  both);
- the Celery `send_task` (a short blocking publish) runs in `asyncio.to_thread`;
- events are read with `XREAD BLOCK` on the async connection, so waiting holds no
  thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import redis.asyncio as aioredis

from runq.config.settings import Settings, get_settings
from runq.errors import JobTimeoutError
from runq.producers.client import reconnect
from runq.producers.client.output_types import schema_options, typed_output
from runq.producers.client.sync import (
    SUBMIT_LEASE,
    Client,
    enqueue_cancel,
    enqueue_start,
    travelling_context,
)
from runq.runs import cancellation, keys
from runq.runs.events import Event, _decode
from runq.runs.files import inputs as input_files
from runq.runs.files.produced import JobFile
from runq.runs.files.produced import load as load_files
from runq.runs.job import TERMINAL, Job
from runq.runs.recent import JobSummary
from runq.runs.store import CREATE, load_record

MAX_CONNECTIONS = 100
POOL_WAIT_S = 10.0


class AsyncClient:
    """An asyncio connection to one runq deployment (its Redis)."""

    def __init__(self, redis_url: str | None = None, settings: Settings | None = None) -> None:
        self.sync = Client(redis_url, settings or get_settings())
        self.settings = self.sync.settings
        self.redis_url = self.sync.redis_url
        # A blocking pool: a burst of requests (hundreds of event streams opening at
        # once in the gateway) waits for one of its connections instead of failing with
        # "Too many connections" when every one is in use.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.redis_url, max_connections=MAX_CONNECTIONS, timeout=POOL_WAIT_S,
            health_check_interval=10, retry=reconnect.async_command_retry(),
        )  # fmt: skip
        self.redis = aioredis.Redis.from_pool(pool)  # closed with the client
        self._create = self.redis.register_script(CREATE)
        self._request_cancel = self.redis.register_script(cancellation.REQUEST)

    async def aclose(self) -> None:
        await self.redis.aclose()
        self.sync.redis.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def submit(
        self,
        input: str | list[dict[str, Any]],
        *,
        idempotency_key: str | None = None,
        job_id: str | None = None,
        **options: Any,
    ) -> AsyncJobHandle:
        """Validate, write the record and enqueue the start; see `Client.submit`."""
        output_type = schema_options(options)
        try:
            return await self._submit(input, idempotency_key, job_id, output_type, options)
        except Exception as exc:
            full = reconnect.full_error(exc, self.redis_url)
            if full is not None:
                raise full from None
            raise

    async def _submit(
        self,
        input: str | list[dict[str, Any]],
        idempotency_key: str | None,
        job_id: str | None,
        output_type: type[Any] | None,
        options: dict[str, Any],
    ) -> AsyncJobHandle:
        if options.get("continue_job") or options.get("tools") or options.get("files"):
            spec, staged = await asyncio.to_thread(self.sync.prepare, input, **options)
        else:
            spec, staged = self.sync.prepare(input, **options)
        await asyncio.to_thread(self.sync.check_budget, spec)
        await input_files.astage(self.redis, spec.tenant, staged, spec.deadline)
        job = Job.new(spec, job_id)
        admission = self.sync.admission
        call = self.sync.store.create_call(
            job,
            [{"type": "job.status", "status": job.status}],  # job.waiting: Admission.enter
            lease_until=time.time() + SUBMIT_LEASE,
            idempotency_key=idempotency_key,
        )
        created = call.outcome(await self._create(keys=call.keys, args=call.args))
        typed = {"output_type": output_type}
        if created is None:  # a job with this id exists already (a deterministic id)
            return AsyncJobHandle(job.id, self, created=False, **typed)
        if created != job.id:  # the idempotency key was used before, for this same job
            return AsyncJobHandle(created, self, created=False, **typed)
        # With admission a worker sends its start in its tenant's turn (runs.fairness);
        # uncontended, the job is admitted at once and its start sent here.
        at_once = admission is None or await asyncio.to_thread(
            admission.enter, job, travelling_context()
        )
        if at_once:
            await asyncio.to_thread(enqueue_start, self.sync.app, job.id)
        return AsyncJobHandle(job.id, self, created=True, **typed)

    async def jobs(
        self, status: str | None = None, limit: int = 20, tenant: str | None = None
    ) -> list[JobSummary]:
        """Recent jobs, newest first; see `Client.jobs`."""
        return await asyncio.to_thread(self.sync.jobs, status, limit, tenant)

    async def import_conversation(self, **options: Any) -> str:
        """See `Client.import_conversation` (a thread is read in a worker thread)."""
        return await asyncio.to_thread(lambda: self.sync.import_conversation(**options))

    async def export_conversation(self, conversation: str, tenant: str | None = None) -> str:
        """See `Client.export_conversation`."""
        return await asyncio.to_thread(self.sync.export_conversation, conversation, tenant)

    async def load(self, job_id: str) -> Job:
        return load_record(job_id, await self.redis.get(keys.job(job_id)))

    async def get_job(self, job_id: str, output_type: type[Any] | None = None) -> AsyncJobHandle:
        await self.load(job_id)  # raises JobNotFoundError
        return AsyncJobHandle(job_id, self, output_type=output_type)

    async def read_events(self, job_id: str, after: str, block_ms: int) -> list[Event]:
        """Events after `after` (a stream id), waiting up to `block_ms` for the first."""
        reply: Any = await self.redis.xread({keys.events(job_id): after}, block=block_ms, count=500)
        if not reply:
            return []
        return [_decode(entry_id, fields) for entry_id, fields in reply[0][1]]

    async def ping(self) -> bool:
        return bool(await self.redis.ping())


class AsyncJobHandle:
    """An async producer's view of one job."""

    def __init__(
        self,
        job_id: str,
        client: AsyncClient,
        *,
        created: bool = False,
        output_type: type[Any] | None = None,
    ) -> None:
        self.id = job_id
        self.client = client
        self.created = created  # False when an idempotency key or job id matched a job
        self.output_type = output_type  # the pydantic model `output()` returns

    def __repr__(self) -> str:
        return f"AsyncJobHandle({self.id!r})"

    async def job(self) -> Job:
        return await self.client.load(self.id)

    async def status(self) -> str:
        return (await self.job()).status

    async def result(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the job to end and return its result; `JobTimeoutError` after `timeout`
        (a Redis restart is waited out; `RedisUnavailableError` if it outlasts `timeout`)."""
        url = self.client.redis_url
        outage = reconnect.Outage(url, timeout)
        job = await reconnect.acall(outage, self.job)
        if job.terminal:
            return job.result()
        async for event in self.events(timeout=outage.remaining()):
            if event.final:
                return dict(event.data["result"])
        job = await reconnect.acall(reconnect.Outage(url, 5.0), self.job)
        if job.terminal:
            return job.result()
        raise JobTimeoutError(f"job {self.id} did not finish within {timeout}s")

    async def files(self) -> list[JobFile]:
        """The files the job's run produced; see `JobHandle.files`."""
        job = await self.job()
        sync = self.client.sync
        return await asyncio.to_thread(
            load_files, job.id, job.files, redis=sync.redis, settings=sync.settings
        )

    async def output(self, timeout: float | None = None) -> Any:
        """The parsed answer, as `output_type` when given; see `JobHandle.output`."""
        return typed_output(self.id, await self.result(timeout), self.output_type)

    async def events(
        self, after: str = "0-0", timeout: float | None = None, block_ms: int = 1000
    ) -> AsyncIterator[Event]:
        """The job's events after a stream id, live, ending at the final one (or `timeout`);
        a Redis restart is waited out within `timeout` (see `reconnect`)."""

        def read(cursor: str, block: int) -> Awaitable[list[Event]]:
            return self.client.read_events(self.id, cursor, block)

        async for event in reconnect.afollow(read, self.client.redis_url, after, timeout, block_ms):
            yield event

    async def cancel(self) -> str:
        """Ask the job to stop; returns the status it was in. See `JobHandle.cancel`
        (`JobAlreadyEndedError` for a job that already succeeded or failed)."""
        client = self.client
        script_keys, args = cancellation.request_call(self.id, client.sync.store.events_ttl)
        reply = await client._request_cancel(keys=script_keys, args=args)
        status = cancellation.outcome(self.id, reply)
        if status not in TERMINAL:
            await asyncio.to_thread(enqueue_cancel, client.sync.app, self.id)
        return status

    async def approvals(self) -> list[dict[str, Any]]:
        """The job's tool calls that wait or waited for a person; see `JobHandle.approvals`."""
        return await asyncio.to_thread(self.client.sync.approvals, self.id)

    async def approve(self, call_id: str) -> dict[str, Any]:
        """Let the waiting call run; see `JobHandle.approve`."""
        return await asyncio.to_thread(self.client.sync.decide, self.id, call_id, True)

    async def deny(self, call_id: str, reason: str | None = None) -> dict[str, Any]:
        """Refuse the waiting call; see `JobHandle.deny`."""
        return await asyncio.to_thread(self.client.sync.decide, self.id, call_id, False, reason)
