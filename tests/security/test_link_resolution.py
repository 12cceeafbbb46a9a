"""A job record never chooses the host a worker calls or the key it sends.

The records here are planted as someone with write access to Redis could write them:
with `links` naming a host of their choosing and `api_key_env` naming any variable of
the worker's environment (records written before 0.3 held such copies of their chain).
The worker must resolve every link from its own configuration instead.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from runq.runs import backends as backends_module
from runq.runs import keys
from runq.runs.backends import BackendFactory
from runq.runs.chains import Link, parse_chains
from runq.runs.job import Job, JobSpec, JobStatus
from runq.runs.links import LinkServices
from runq.runs.retry import RetryPolicies
from runq.runs.steps import Steps
from runq.runs.store import JobStore
from runq.runs.tools import ToolRegistry

CANARY = "canary-value-that-must-never-leave-the-worker"
EVIL = "http://attacker.invalid/v1"
WORKER_URL = "http://worker-endpoint.invalid/v1"
WORKER_KEY = "worker-own-key"
HOSTILE_LINKS = [
    {"backend": "chat", "model": "gpt-5-mini", "base_url": EVIL, "api_key_env": "RUNQ_CANARY"},
    {"backend": "responses", "model": "x", "base_url": EVIL, "api_key_env": "AWS_SECRET"},
]
CHAINS = parse_chains(
    {
        "main": [
            {"backend": "responses", "model": "big"},
            {"backend": "chat", "model": "local", "base_url": "http://vllm.internal/v1",
             "api_key_env": "RUNQ_VLLM_KEY"},
        ]
    }
)  # fmt: skip
DONE = {"status": "completed", "handle": {"response_id": "r"}, "output_text": "the answer"}


class Clients:
    """Records every client the real `BackendFactory` builds: (base_url, api_key)."""

    def __init__(self) -> None:
        self.built: list[tuple[str | None, str]] = []

    def __call__(self, base_url: str | None, api_key: str, timeout: float) -> object:
        self.built.append((base_url, api_key))
        return object()


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Clients:
    recorded = Clients()
    monkeypatch.setattr(backends_module, "get_client", recorded)
    monkeypatch.setenv("RUNQ_CANARY", CANARY)
    monkeypatch.setenv("AWS_SECRET", CANARY)
    monkeypatch.setenv("RUNQ_VLLM_KEY", "vllm-key")
    return recorded


def _steps(store: JobStore, backend: Any, scheduler: Any, fake_redis: Any, **svc: Any) -> Steps:
    """Steps whose backends go through the worker's real factory first (which records
    the client it would build), then play the scripted backend."""
    factory = BackendFactory(
        base_url=WORKER_URL, api_key=WORKER_KEY, timeout=5, registry=ToolRegistry()
    )

    def backend_for(job: Job, link: Link) -> Any:
        factory(job, link)
        return backend

    services = LinkServices(fake_redis, **svc)
    return Steps(store, backend_for, scheduler, lambda j, r: {}, services=services,
                 retry=RetryPolicies(test_mode=True))  # fmt: skip


def _plant(store: JobStore, fake_redis: Any, **record: Any) -> Job:
    """A record as a writer of Redis makes it: the job, plus whatever fields they like."""
    job = Job.new(JobSpec(input="hello", model="gpt-5-mini").validate())
    store.create(job, [], lease_until=time.time() + 60)
    spec = {**job.spec.to_dict(), **record.pop("spec", {})}
    data = {**job.to_dict(), **record, "spec": spec}
    data.pop("version")
    fake_redis.set(keys.job(job.id), json.dumps({"version": 0, **data}))
    return job


def _drive(steps: Steps, scheduler: Any, job: Job) -> Job:
    steps.run("start", job.id, 0)
    for _ in range(10):
        current = steps.store.get(job.id)
        if current.terminal:
            return current
        step, job_id, token, _ = scheduler.last()
        steps.run(step, job_id, token)
    raise AssertionError("the job did not end")


def _done(backend: Any) -> None:
    from runq.runs.backends.base import RunState

    backend.states = [RunState(**DONE)]


def test_stored_links_are_ignored_for_a_job_without_a_chain(
    store, backend, scheduler, fake_redis, clients
) -> None:
    job = _plant(store, fake_redis, links=HOSTILE_LINKS, link_index=0)
    _done(backend)
    ended = _drive(_steps(store, backend, scheduler, fake_redis), scheduler, job)
    assert ended.status == JobStatus.SUCCEEDED
    assert clients.built == [(WORKER_URL, WORKER_KEY)]  # the worker's endpoint and key
    assert ended.source == "responses:gpt-5-mini"  # the job's own backend and model
    assert ended.chain == ""  # the record now names its chain: none
    assert CANARY not in store.redis.get(keys.job(job.id)).decode()


def test_a_chain_link_is_the_workers_whatever_the_record_says(
    store, backend, scheduler, fake_redis, clients
) -> None:
    job = _plant(
        store,
        fake_redis,
        links=HOSTILE_LINKS,
        link_index=1,
        chain="main",
        spec={"backend": "chat", "model": "evil-model"},
    )
    _done(backend)
    steps = _steps(store, backend, scheduler, fake_redis, chains=CHAINS)
    ended = _drive(steps, scheduler, job)
    assert ended.status == JobStatus.SUCCEEDED
    # Link 2 of the worker's chain `main`: its host and the key of its own variable.
    assert clients.built == [("http://vllm.internal/v1", "vllm-key")]
    assert (ended.source, ended.spec.model) == ("chat:local", "local")


def test_an_old_record_with_a_copied_chain_runs_on_the_workers_default_chain(
    store, backend, scheduler, fake_redis, clients
) -> None:
    """Records from before 0.3 have `links` and no `chain`: the worker's default chain."""
    job = _plant(store, fake_redis, links=HOSTILE_LINKS, link_index=0)
    _done(backend)
    steps = _steps(store, backend, scheduler, fake_redis, chains=CHAINS, default_chain="main")
    ended = _drive(steps, scheduler, job)
    assert ended.status == JobStatus.SUCCEEDED
    assert clients.built == [(WORKER_URL, WORKER_KEY)]  # link 1 of `main`: no host of its own
    assert (ended.chain, ended.source) == ("main", "responses:big")


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"chain": "not-configured"}, "unknown chain 'not-configured'"),
        ({"chain": "main", "link_index": 7}, "has no link 8"),
        ({"spec": {"chain": "nope"}}, "unknown chain 'nope'"),
    ],
)
def test_a_record_naming_what_the_worker_lacks_fails_without_a_call(
    store, backend, scheduler, fake_redis, clients, record, reason
) -> None:
    job = _plant(store, fake_redis, links=HOSTILE_LINKS, **record)
    ended = _drive(_steps(store, backend, scheduler, fake_redis, chains=CHAINS), scheduler, job)
    assert ended.status == JobStatus.FAILED
    assert reason in ended.error["message"]
    assert clients.built == [] and backend.calls == []
