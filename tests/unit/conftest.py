"""Core unit tests run on fakeredis (with Lua) and an in-memory backend: no servers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import pytest

from runq.errors import BackendError
from runq.runs.backends.base import NO_STREAMING, RunState, StreamSupport
from runq.runs.job import Job
from runq.runs.store import JobStore

RESULT_PREFIX = "celery-task-meta-"  # the result backend's key of a job, as Celery names it


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def store(fake_redis: fakeredis.FakeRedis) -> JobStore:
    return JobStore(fake_redis, events_maxlen=50, events_ttl=600, result_ttl=900)


@dataclass
class RecordingScheduler:
    """Records what the core asked for instead of sending Celery messages.

    As the worker's scheduler does, it hands each ending its result's entry, which the
    job store writes with the end (`result_entry`) into `redis`; `entries=False` plays a
    result backend that is not the job store's Redis: results are then published after
    the end (`publish_result`), where `publish_failures` makes the first ones fail."""

    redis: Any = None  # the job store's Redis, where the ends write their results
    entries: bool = True
    scheduled: list[tuple[str, str, int, float]] = field(default_factory=list)
    dispatched: list[tuple[str, int, list[str]]] = field(default_factory=list)
    stored: list[dict[str, Any]] = field(default_factory=list)  # by `publish_result`
    publish_failures: int = 0  # how many publications raise before one succeeds

    def schedule(self, step: str, job_id: str, token: int, countdown: float) -> None:
        self.scheduled.append((step, job_id, token, countdown))

    def dispatch_tools(self, job: Job, token: int) -> None:
        self.dispatched.append((job.id, token, [c["call_id"] for c in job.pending_calls]))

    def result_entry(self, job: Job) -> tuple[str, str, int] | None:
        if not self.entries:
            return None
        return f"{RESULT_PREFIX}{job.id}", json.dumps(job.result()), 900

    def publish_result(self, job: Job) -> None:
        if self.publish_failures:
            self.publish_failures -= 1
            raise ConnectionError("result backend unreachable")
        self.stored.append(job.result())

    @property
    def published(self) -> list[dict[str, Any]]:
        """Every result out: those the ends wrote (by key), then those published after."""
        written = []
        if self.redis is not None:
            for key in sorted(self.redis.keys(f"{RESULT_PREFIX}*")):
                written.append(json.loads(self.redis.get(key)))
        return written + self.stored

    def last(self) -> tuple[str, str, int, float]:
        return self.scheduled[-1]


@dataclass
class ScriptedBackend:
    """Plays back run states (or raises errors) in order; counts every call."""

    states: list[RunState | BackendError] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    submitted: list[list[tuple[str, str]]] = field(default_factory=list)
    name: str = "responses"

    def _next(self, what: str) -> RunState:
        self.calls.append(what)
        item = self.states.pop(0)
        if isinstance(item, BackendError):
            raise item
        return item

    def start(self, job: Job) -> RunState:
        return self._next("start")

    def retrieve(self, job: Job) -> RunState:
        return self._next("retrieve")

    def submit_tool_outputs(self, job: Job, outputs: list[tuple[str, str]]) -> RunState:
        self.submitted.append(outputs)
        return self._next("submit")

    def cancel(self, job: Job) -> None:
        self.calls.append("cancel")

    def streaming(self) -> StreamSupport:
        return NO_STREAMING


@pytest.fixture
def scheduler(fake_redis: fakeredis.FakeRedis) -> RecordingScheduler:
    return RecordingScheduler(redis=fake_redis)


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend()


def scripted_steps(
    store: JobStore, backend: ScriptedBackend, scheduler: RecordingScheduler, **config: Any
) -> Any:
    """The core's `Steps` on a scripted backend and a recording scheduler, with test
    retry timings; `config` goes to `StepConfig` (imported here: the steps are heavy)."""
    from runq.runs.retry import RetryPolicies
    from runq.runs.step_config import StepConfig
    from runq.runs.steps import Steps

    return Steps(
        store,
        lambda job, link: backend,
        scheduler,
        lambda job_id, rnd: {},
        config=StepConfig(**config),
        retry=RetryPolicies(test_mode=True),
    )
