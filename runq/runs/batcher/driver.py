"""The batcher: cuts queued lines into batches and takes each batch through its life.

It runs as a Celery task (`runq.batches.tick`) that any worker may run: every worker's
pump thread sends it at most once per `batch_tick` seconds fleet-wide (a Redis key set
with NX and an expiry), and the task runs only while it holds `runq:batcher:lock`, a
lock with a lease it renews between HTTP calls. A worker killed mid-tick leaves the lock
to lapse; the next tick, on any worker, goes on from what Redis says. No process is
special and none has to survive.

A batch's life, each status written with a compare-and-set from the status its mover
read (`BatchQueue.move`):

    cut -> uploaded -> creating -> created -> results -> (closed)

* **cut** (`BatchQueue.cut`, one Lua call): a group's lines leave its queue for the new
  batch when it has `batch_max_lines` lines (at most OpenAI's 50,000), `batch_max_bytes`
  bytes (at most 200 MB), or its oldest line waited `batch_max_age` seconds;
* **uploaded**: the JSONL file is at the backend (`purpose: batch`); a crash before the
  file id is written uploads it again (an unused file, never a second batch);
* **creating**: the intent to create, with its time, is written *before* the create,
  and the batch carries `metadata.runq_batch` = runq's own batch id. The backend's id is
  written after (`created`). A batcher that finds a batch still `creating` after the
  request timeout (its creator died between the call and the write) looks the batch up
  by that metadata in the backend's list: found, it adopts its id; not found, it was
  never created, and it is created now. The lease is renewed before every call for
  longer than the call may take, so the next holder of the lease never finds a create
  still in flight. So a batch is never created twice;
* **created**: the batch, not its jobs, is looked at every `batch_poll_interval`, and
  at the next tick when its `batch.*` webhook arrives (`runs.webhooks`: the receiver
  finds runq's batch by the backend's id, written here, and makes it due);
* **results**: when it ended, each line's outcome is stored once (`SET NX`) where its
  job's `batch` step reads it; then each job still waiting for that line is sent its
  `batch` step with its record's token. A duplicate send is a stale step; a job that
  moved on (cancelled, or `auto` moved it to standard) is not sent anything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai
import structlog

from runq.errors import JobNotFoundError
from runq.runs import lua
from runq.runs.backends.client import get_client
from runq.runs.batcher.queue import BatchQueue, Group, job_of
from runq.runs.chains import Link, resolve_chain
from runq.runs.job import JobSpec, Step
from runq.runs.keys import batcher_lock
from runq.runs.scheduler import Scheduler
from runq.runs.store import JobStore

log = structlog.get_logger("runq.batcher")

OPENAI_MAX_LINES = 50_000
OPENAI_MAX_BYTES = 200 * 1024 * 1024
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})


class _LeaseLost(Exception):
    """The batcher's lease passed to another worker: this tick stops where it is."""


@dataclass(frozen=True)
class BatchLimits:
    max_lines: int = OPENAI_MAX_LINES
    max_bytes: int = OPENAI_MAX_BYTES
    max_age: float = 60.0
    poll_interval: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_lines", min(self.max_lines, OPENAI_MAX_LINES))
        object.__setattr__(self, "max_bytes", min(self.max_bytes, OPENAI_MAX_BYTES))


class Batcher:
    """One tick at a time, under the batcher's lease (see the module docstring)."""

    def __init__(
        self,
        queue: BatchQueue,
        store: JobStore,
        scheduler: Scheduler,
        client_for: Callable[[Group], openai.OpenAI],
        *,
        limits: BatchLimits | None = None,
        request_timeout: float = 30.0,
    ) -> None:
        self.queue = queue
        self.store = store
        self.scheduler = scheduler
        self.client_for = client_for
        self.limits = limits or BatchLimits()
        self.lease = max(60.0, 4 * request_timeout)
        self.create_grace = request_timeout + 10.0  # a create older than this is over
        self.upload_timeout = max(600.0, request_timeout)  # a file may be 200 MB
        self._owner = ""
        self._renew = lua.register(queue.redis, "store_extend_lock")
        self._release = lua.register(queue.redis, "store_release")

    # -- the lease ---------------------------------------------------------------------
    def tick(self, owner: str) -> dict[str, int]:
        """Cut what is due and move every open batch on; returns what it did (logs, tests)."""
        redis = self.queue.redis
        done = {"cut": 0, "moved": 0}
        if not redis.set(batcher_lock(), owner, nx=True, px=int(self.lease * 1000)):
            return done
        self._owner = owner
        try:
            groups = {g.id: g for g in self.queue.groups()}
            for group in groups.values():
                done["cut"] += self._cut_due(group)
            for batch_id in self.queue.open_batches():
                done["moved"] += self._advance(batch_id, groups)
        except _LeaseLost:
            log.warning("batcher.lease_lost", owner=owner)
        finally:
            self._release(keys=[batcher_lock()], args=[owner])
        return done

    def _hold(self, seconds: float) -> None:
        """Renew the lease for `seconds` before a call, or stop the tick if it is lost.

        Renewed before every backend call for longer than the call may take, so no other
        batcher holds the lease while one of this tick's calls is in flight: a create
        found `creating` by the next holder has ended, one way or the other."""
        if not self._renew(keys=[batcher_lock()], args=[self._owner, int(seconds * 1000)]):
            raise _LeaseLost

    # -- cut -----------------------------------------------------------------------------
    def _cut_due(self, group: Group) -> int:
        cuts = 0
        while True:
            queued = self.queue.queued(group, self.limits.max_lines)
            if not queued.ids or queued.oldest is None:
                return cuts
            taken: list[str] = []
            size = 0
            for line_id, bytes_ in zip(queued.ids, queued.sizes, strict=True):
                if taken and size + bytes_ > self.limits.max_bytes:
                    break
                taken.append(line_id)
                size += bytes_
            full = len(queued.ids) >= self.limits.max_lines or len(taken) < len(queued.ids)
            old = time.time() - queued.oldest >= self.limits.max_age
            if not (full or old):
                return cuts
            batch_id = self.queue.cut(group, taken)
            if batch_id is None:
                return cuts
            cuts += 1
            log.info("batch.cut", batch=batch_id, group=group.id, lines=len(taken), bytes=size,
                     why="full" if full else "age")  # fmt: skip

    # -- a batch's life ------------------------------------------------------------------
    def _advance(self, batch_id: str, groups: dict[str, Group]) -> int:
        """Move one batch on as far as it goes now; how many statuses it moved."""
        moved = 0
        for _ in range(5):
            self._hold(self.lease)
            rec = self.queue.record(batch_id)
            group = groups.get(rec.get("group", ""))
            if group is None:  # a record without its group: nothing to send it with
                log.error("batch.group_missing", batch=batch_id, group=rec.get("group"))
                return moved
            status = rec.get("status")
            try:
                step = getattr(self, f"_on_{status}", None)
                if step is None or not step(batch_id, rec, group):
                    return moved
            except openai.OpenAIError as err:  # the backend failed: the next tick retries
                log.warning("batch.call_failed", batch=batch_id, status=status, error=str(err))
                return moved
            moved += 1
        return moved

    def _on_cut(self, batch_id: str, rec: dict[str, str], group: Group) -> bool:
        lines = self.queue.lines(batch_id)
        data = "".join(line + "\n" for line in lines.values()).encode()
        client = self.client_for(group).with_options(timeout=self.upload_timeout)
        self._hold(self.upload_timeout + 60.0)
        uploaded = client.files.create(file=(f"{batch_id}.jsonl", data), purpose="batch")
        log.info("batch.uploaded", batch=batch_id, file_id=uploaded.id, bytes=len(data))
        return self.queue.move(batch_id, "cut", "uploaded", file_id=uploaded.id)

    def _on_uploaded(self, batch_id: str, rec: dict[str, str], group: Group) -> bool:
        # The intent first: from here on, a batcher that finds no id looks before creating.
        if not self.queue.move(batch_id, "uploaded", "creating", intent_at=repr(time.time())):
            return False
        client = self.client_for(group)
        try:
            created = client.batches.create(
                input_file_id=rec["file_id"],
                endpoint=group.endpoint,  # type: ignore[arg-type]
                completion_window="24h",
                metadata={"runq_batch": batch_id},
            )
        except openai.APIStatusError as err:
            if err.status_code == 429 or 400 <= err.status_code < 409:
                # Refused outright: nothing was created, try again on a later tick.
                self.queue.move(batch_id, "creating", "uploaded")
                if err.status_code != 429:
                    return self._refused(batch_id, err)
            raise  # a 5xx or 409 may have created it: `creating` will look it up
        return self._adopt(batch_id, created.id)

    def _refused(self, batch_id: str, err: openai.APIStatusError) -> bool:
        """The backend will not create this batch (a 4xx): its lines fail their jobs."""
        message = f"the backend refused the batch (HTTP {err.status_code}): {err.message}"
        self._store_results(batch_id, "uploaded", {}, ended="batch_refused", message=message)
        return True

    def _adopt(self, batch_id: str, backend_id: str) -> bool:
        log.info("batch.created", batch=batch_id, batch_id=backend_id)
        next_poll = repr(time.time() + self.limits.poll_interval)
        moved = self.queue.move(
            batch_id, "creating", "created", batch_id=backend_id, next_poll=next_poll
        )
        # Its `batch.*` webhook (webhook mode) makes it due at once; one that came
        # already left an early mark.
        if moved and self.queue.expect_webhook(batch_id, backend_id):
            self.queue.look_now(batch_id)
        return moved

    def _on_creating(self, batch_id: str, rec: dict[str, str], group: Group) -> bool:
        """A create whose outcome was never written: adopt the batch if it exists."""
        if time.time() - float(rec.get("intent_at", 0)) < self.create_grace:
            return False  # its creator may still be waiting for the answer
        found = self._find(self.client_for(group), batch_id, float(rec.get("intent_at", 0)))
        if found is not None:
            log.warning("batch.adopted", batch=batch_id, batch_id=found)
            return self._adopt(batch_id, found)
        log.warning("batch.create_lost", batch=batch_id)
        return self.queue.move(batch_id, "creating", "uploaded")

    @staticmethod
    def _find(client: openai.OpenAI, batch_id: str, since: float) -> str | None:
        """The backend's batch carrying `metadata.runq_batch == batch_id`, if any
        (the list is newest first: stop at batches made well before the intent)."""
        for batch in client.batches.list(limit=100):
            if (batch.metadata or {}).get("runq_batch") == batch_id:
                return batch.id
            if batch.created_at < since - 600:
                return None
        return None

    def _on_created(self, batch_id: str, rec: dict[str, str], group: Group) -> bool:
        if time.time() < float(rec.get("next_poll", 0)):
            return False
        client = self.client_for(group)
        batch = client.batches.retrieve(rec["batch_id"])
        if batch.status not in ENDED:
            self.queue.set_fields(batch_id, next_poll=repr(time.time() + self.limits.poll_interval),
                                  backend_status=batch.status)  # fmt: skip
            return False
        outcomes: dict[str, dict[str, Any]] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                for raw in client.files.content(file_id).text.splitlines():
                    if raw.strip():
                        item = json.loads(raw)
                        outcomes[item["custom_id"]] = _outcome(item, rec["batch_id"])
        errors = "; ".join(e.message or e.code or "" for e in (batch.errors.data or [])) \
            if batch.errors else ""  # fmt: skip
        message = f"the batch ended {batch.status}" + (f": {errors}" if errors else "")
        log.info("batch.ended", batch=batch_id, batch_id=rec["batch_id"], status=batch.status,
                 lines=len(outcomes))  # fmt: skip
        return self._store_results(batch_id, "created", outcomes,
                                   ended=f"batch_{batch.status}", message=message)  # fmt: skip

    def _store_results(self, batch_id: str, was: str, outcomes: dict[str, dict[str, Any]],
                       *, ended: str, message: str) -> bool:  # fmt: skip
        """Every line's outcome (a line without one shares its batch's end), then `results`."""
        for line_id in self.queue.lines(batch_id):
            outcomes.setdefault(line_id, {"kind": "error", "code": ended, "message": message})
        self.queue.store_outcomes(outcomes)
        return self.queue.move(batch_id, was, "results")

    def _on_results(self, batch_id: str, rec: dict[str, str], group: Group) -> bool:
        """Send each job still waiting for its line its `batch` step, then close."""
        sent = 0
        for line_id in self.queue.lines(batch_id):
            try:
                job = self.store.get(job_of(line_id))
            except JobNotFoundError:
                continue
            if job.terminal or job.step != Step.BATCH or job.handle.get("batch_line") != line_id:
                continue  # cancelled, or moved on: its line's result is not its to apply
            self.scheduler.schedule(Step.BATCH, job.id, job.token, 0)
            sent += 1
        if not self.queue.move(batch_id, "results", "closed"):
            return False
        self.queue.close(batch_id)
        log.info("batch.fanned_out", batch=batch_id, jobs=sent)
        return False


def _outcome(item: dict[str, Any], backend_id: str) -> dict[str, Any]:
    """One result line as its job reads it."""
    response = item.get("response") or {}
    body = response.get("body") or {}
    if response and response.get("status_code") == 200:
        return {"kind": "output", "body": body, "batch_id": backend_id}
    error = item.get("error") or body.get("error") or {}
    code = error.get("code") or f"http_{response.get('status_code', 'error')}"
    return {"kind": "error", "code": str(code), "message": str(error.get("message") or code),
            "batch_id": backend_id}  # fmt: skip


def link_clients(
    chains: dict[str, list[Link]], base_url: str | None, api_key: str, timeout: float
) -> Callable[[Group], openai.OpenAI]:
    """How the batcher reaches a group's link: looked up by chain name and index in this
    worker's configuration, with the link's own host and key variable, else the
    worker's (as `BackendFactory` does for a job's requests)."""

    def client_for(group: Group) -> openai.OpenAI:
        spec = JobSpec(input="batch", backend=group.backend, model=group.model)
        link = resolve_chain(group.chain, spec, chains).link(group.link_index)
        return get_client(link.base_url or base_url, link.api_key(api_key), timeout)

    return client_for
