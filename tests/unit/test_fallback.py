"""Fallback chains, breakers and the global rate limiter, driven through the steps."""

from __future__ import annotations

import time

import pytest

from runq.errors import BackendError, ConfigurationError
from runq.runs import keys
from runq.runs.backends.base import RunState
from runq.runs.breaker import CircuitBreaker
from runq.runs.chains import Link, fingerprint, parse_chains
from runq.runs.job import Job, JobSpec, JobStatus
from runq.runs.links import LinkServices
from runq.runs.retry import RetryPolicies, RetryPolicy
from runq.runs.step_config import StepConfig
from runq.runs.steps import Steps

CHAIN = parse_chains(
    {
        "main": {
            "links": [
                {"backend": "responses", "model": "big"},
                {"backend": "responses", "model": "small"},
                {"kind": "cache"},
                {"kind": "template", "message": "Busy, try later."},
            ]
        }
    }
)


def _steps(store, backend, scheduler, fake_redis, **services) -> Steps:
    svc = LinkServices(fake_redis, chains=CHAIN, default_chain="main", **services)
    retry = RetryPolicies(
        transient=RetryPolicy(max_attempts=2),
        run_failed=RetryPolicy(2),
        rate_limited=RetryPolicy(2),
        test_mode=True,
    )
    return Steps(
        store,
        lambda job, link: backend,
        scheduler,
        lambda j, r: {},
        services=svc,
        retry=retry,
        config=StepConfig(deadline_margin=2.0),
    )


def _submit(store, text="hello", **spec) -> Job:
    job = Job.new(JobSpec(input=text, **spec).validate())
    store.create(job, [], lease_until=time.time() + 60)
    return job


def _drive(steps, scheduler, job, limit=20) -> Job:
    """Run whatever is due until the job ends."""
    steps.run("start", job.id, 0)
    for _ in range(limit):
        current = steps.store.get(job.id)
        if current.terminal:
            return current
        step, job_id, token, _ = scheduler.last()
        steps.run(step, job_id, token)
    raise AssertionError("job did not end")


DONE = RunState("completed", handle={"response_id": "r"}, output_text="the answer")
SERVER = BackendError("boom", code="server_error", retryable=True)
BAD = BackendError("bad request", code="bad_request", retryable=False, status_code=400)


def test_retries_exhausted_moves_to_the_next_link(store, backend, scheduler, fake_redis):
    backend.states = [SERVER, SERVER, DONE]
    job = _drive(_steps(store, backend, scheduler, fake_redis), scheduler, _submit(store))
    assert job.status == JobStatus.SUCCEEDED
    assert job.source == "responses:small"
    assert job.fallback_used
    assert [a["link"] for a in job.attempts] == ["responses:big"]
    assert job.result()["source"] == "responses:small"


def test_final_error_moves_on_at_once(store, backend, scheduler, fake_redis):
    backend.states = [BAD, DONE]
    job = _drive(_steps(store, backend, scheduler, fake_redis), scheduler, _submit(store))
    assert (job.status, job.source) == (JobStatus.SUCCEEDED, "responses:small")
    assert job.attempts[0]["code"] == "bad_request"


@pytest.mark.parametrize(
    ("ending", "code", "tries"),
    # failed (server_error) and expired are retried once first; incomplete is final.
    [("failed", "server_error", 2), ("expired", None, 2), ("incomplete", "max_output_tokens", 1)],
)
def test_a_run_that_ends_badly_moves_on(store, backend, scheduler, fake_redis, ending, code, tries):
    bad = RunState(ending, handle={"response_id": "x"}, error_code=code)
    backend.states = [bad] * tries + [DONE]
    job = _drive(_steps(store, backend, scheduler, fake_redis), scheduler, _submit(store))
    assert (job.status, job.source) == (JobStatus.SUCCEEDED, "responses:small")
    assert job.attempts[0]["link"] == "responses:big"


def test_open_breaker_skips_the_link(store, backend, scheduler, fake_redis):
    breaker = CircuitBreaker(fake_redis, "responses:big", failure_threshold=1, open_seconds=60)
    breaker.record_failure()
    backend.states = [DONE]
    job = _drive(
        _steps(store, backend, scheduler, fake_redis, breaker_failures=1), scheduler, _submit(store)
    )
    assert job.source == "responses:small"
    assert job.attempts[0]["code"] == "circuit_open"
    assert backend.calls == ["start"]  # the open link was never called


def test_failures_open_the_breaker_for_the_next_jobs(store, backend, scheduler, fake_redis):
    steps = _steps(store, backend, scheduler, fake_redis, breaker_failures=2)
    backend.states = [SERVER, SERVER, DONE]
    _drive(steps, scheduler, _submit(store))
    assert CircuitBreaker(fake_redis, "responses:big", failure_threshold=2).state() == "open"


def test_deadline_near_skips_to_an_instant_link(store, backend, scheduler, fake_redis):
    job = _submit(store, deadline=30)
    aged = store.get(job.id)
    aged.timings["queued_at"] -= 29  # one second left: below the 2 s margin
    store.commit(aged)
    done = _drive(_steps(store, backend, scheduler, fake_redis), scheduler, job)
    assert done.status == JobStatus.SUCCEEDED
    assert done.source == "template"  # the cache had nothing; no model was called
    assert backend.calls == []
    assert [a["code"] for a in done.attempts] == ["deadline_near", "deadline_near", "cache_miss"]


def test_cache_answers_an_identical_earlier_question(store, backend, scheduler, fake_redis):
    steps = _steps(store, backend, scheduler, fake_redis)
    backend.states = [DONE]
    _drive(steps, scheduler, _submit(store, "What is  the answer?"))
    backend.states = [BAD, BAD]
    again = _drive(steps, scheduler, _submit(store, "What is the answer?"))
    assert (again.status, again.source, again.output_text) == (
        JobStatus.SUCCEEDED,
        "cache",
        "the answer",
    )


def test_every_link_failing_fails_with_the_full_reason(store, backend, scheduler, fake_redis):
    chains = parse_chains(
        {"two": [{"backend": "responses", "model": "a"}, {"backend": "chat", "model": "b"}]}
    )
    svc = LinkServices(fake_redis, chains=chains, default_chain="two")
    steps = Steps(
        store,
        lambda job, link: backend,
        scheduler,
        lambda j, r: {},
        services=svc,
        retry=RetryPolicies(test_mode=True),
    )
    backend.states = [BAD, BAD]
    job = _drive(steps, scheduler, _submit(store))
    assert job.status == JobStatus.FAILED
    assert job.error["code"] == "all_links_failed"
    assert "responses:a: bad_request" in job.error["message"]
    assert "chat:b: bad_request" in job.error["message"]
    assert [a["link"] for a in job.result()["attempts"]] == ["responses:a", "chat:b"]


def test_fallback_is_visible_while_it_happens(store, backend, scheduler, fake_redis):
    backend.states = [BAD]
    steps = _steps(store, backend, scheduler, fake_redis)
    job = _submit(store)
    assert steps.run("start", job.id, 0) == "falling_back"
    assert store.get(job.id).status == JobStatus.FALLING_BACK


def test_no_capacity_reschedules_after_the_exact_wait(store, backend, scheduler, fake_redis):
    steps = _steps(store, backend, scheduler, fake_redis, default_rpm=1)
    backend.states = [DONE, DONE]
    first = _submit(store)
    assert steps.run("start", first.id, 0) == JobStatus.SUCCEEDED
    second = _submit(store, "another")
    assert steps.run("start", second.id, 0) == "rate_limited"
    step, _, token, wait = scheduler.last()
    assert (step, token) == ("start", 0)
    assert 55 < wait <= 60  # one request per minute: the next token in about a minute
    assert backend.calls == ["start"]
    assert store.claim(second.id, 1).acquired  # the job was given back untouched


def test_a_job_without_a_chain_has_one_link(store, backend, scheduler, fake_redis):
    svc = LinkServices(fake_redis)
    steps = Steps(
        store,
        lambda job, link: backend,
        scheduler,
        lambda j, r: {},
        services=svc,
        retry=RetryPolicies(test_mode=True),
    )
    backend.states = [DONE]
    job = _drive(steps, scheduler, _submit(store, model="m1"))
    assert (job.source, job.fallback_used) == ("responses:m1", False)


def test_chain_configuration_errors_name_the_link() -> None:
    with pytest.raises(ConfigurationError, match="chain 'x' link 2: a model link needs a model"):
        parse_chains({"x": [{"backend": "chat", "model": "a"}, {"backend": "chat"}]})
    with pytest.raises(ConfigurationError, match="template link needs a message"):
        parse_chains({"x": [{"kind": "template"}]})
    with pytest.raises(ConfigurationError, match="link 1: rpm must be a number >= 0"):
        parse_chains({"x": [{"backend": "chat", "model": "a", "rpm": -1}]})
    with pytest.raises(ConfigurationError, match="tpm must be a number >= 0"):
        parse_chains({"x": [{"backend": "chat", "model": "a", "tpm": "lots"}]})


def test_api_key_is_read_from_the_named_variable(monkeypatch) -> None:
    link = Link(backend="chat", model="m", api_key_env="OTHER_KEY")
    monkeypatch.delenv("OTHER_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OTHER_KEY"):
        link.api_key("default")
    monkeypatch.setenv("OTHER_KEY", "sk-other")
    assert link.api_key("default") == "sk-other"


def test_fingerprint_normalizes_whitespace_not_meaning() -> None:
    assert fingerprint(JobSpec(input="a  b\n")) == fingerprint(JobSpec(input="a b"))
    assert fingerprint(JobSpec(input="a b")) != fingerprint(JobSpec(input="a c"))
    assert fingerprint(JobSpec(input="a", model="x")) == fingerprint(JobSpec(input="a", model="y"))


def test_open_breaker_on_the_only_link_waits_instead_of_failing(
    store, backend, scheduler, fake_redis
):
    CircuitBreaker(fake_redis, "responses:m", failure_threshold=1, open_seconds=30).record_failure()
    svc = LinkServices(fake_redis, breaker_failures=1, breaker_open_seconds=30)
    steps = Steps(store, lambda job, link: backend, scheduler, lambda j, r: {}, services=svc,
                  retry=RetryPolicies(test_mode=True))  # fmt: skip
    job = _submit(store, model="m")
    assert steps.run("start", job.id, 0) == "breaker_wait"
    step, _, token, wait = scheduler.last()
    assert (step, token) == ("start", 0)
    assert 29 < wait <= 31  # the open period's end (set just now), plus jitter
    assert not store.get(job.id).terminal
    assert backend.calls == []


def test_jobs_waiting_on_a_probe_look_again_within_seconds(store, backend, scheduler, fake_redis):
    # Another worker's job is probing the link right now (the open period is over).
    now = time.time()
    fake_redis.hset(keys.breaker("responses:m"), mapping={
        "state": "half_open", "failures": 1, "opened": now - 31, "probe": now})  # fmt: skip
    svc = LinkServices(fake_redis, breaker_failures=1, breaker_open_seconds=30)
    steps = Steps(store, lambda job, link: backend, scheduler, lambda j, r: {}, services=svc,
                  retry=RetryPolicies(test_mode=True))  # fmt: skip
    job = _submit(store, model="m")
    assert steps.run("start", job.id, 0) == "breaker_wait"
    wait = scheduler.last()[3]
    assert 1.0 <= wait <= 3.0  # not a whole open period (or probe timeout) later


def test_a_rate_limited_probe_gives_the_probe_back(store, backend, scheduler, fake_redis):
    breaker = CircuitBreaker(fake_redis, "responses:m", failure_threshold=1, open_seconds=0)
    breaker.record_failure()
    svc = LinkServices(fake_redis, breaker_failures=1, breaker_open_seconds=0, default_rpm=1)
    steps = Steps(store, lambda job, link: backend, scheduler, lambda j, r: {}, services=svc,
                  retry=RetryPolicies(test_mode=True))  # fmt: skip
    limiter = svc.limiter(Link(backend="responses", model="m"))
    assert limiter is not None and limiter.acquire().ok  # the bucket had one request: now none
    job = _submit(store, model="m")
    assert steps.run("start", job.id, 0) == "rate_limited"
    assert backend.calls == []
    assert breaker.ask().probe  # the next caller probes at once


def test_429s_do_not_open_the_breaker(store, backend, scheduler, fake_redis):
    limited = BackendError("slow down", code="rate_limited", retryable=True)
    backend.states = [limited, DONE]
    steps = _steps(store, backend, scheduler, fake_redis, breaker_failures=1)
    job = _drive(steps, scheduler, _submit(store))
    assert (job.status, job.source) == (JobStatus.SUCCEEDED, "responses:big")


def _keyed_steps(store, backend, scheduler, fake_redis, links) -> Steps:
    """Steps whose backends are built as a worker builds them: a link's API key first."""

    def backend_for(job: Job, link: Link):
        link.api_key("the-default-key")
        return backend

    svc = LinkServices(fake_redis, chains=parse_chains({"keyed": links}), default_chain="keyed")
    return Steps(store, backend_for, scheduler, lambda j, r: {}, services=svc,
                 retry=RetryPolicies(test_mode=True))  # fmt: skip


def test_a_link_without_its_api_key_is_skipped_not_fatal(
    store, backend, scheduler, fake_redis, monkeypatch
):
    monkeypatch.delenv("UNSET_KEY", raising=False)
    links = [
        {"backend": "chat", "model": "local", "base_url": "http://vllm/v1",
         "api_key_env": "UNSET_KEY"},
        {"backend": "responses", "model": "small"},
    ]  # fmt: skip
    backend.states = [DONE]
    steps = _keyed_steps(store, backend, scheduler, fake_redis, links)
    job = _drive(steps, scheduler, _submit(store))
    assert (job.status, job.source, job.fallback_used) == ("succeeded", "responses:small", True)
    [skipped] = job.result()["attempts"]
    assert skipped["link"] == "chat:local"  # the host is the operator's, not shown
    assert skipped["code"] == "link_unusable"
    assert "UNSET_KEY" in skipped["error"]
    assert backend.calls == ["start"], "nothing was sent for the skipped link"


def test_no_usable_link_fails_with_every_links_reason(
    store, backend, scheduler, fake_redis, monkeypatch
):
    monkeypatch.delenv("UNSET_A", raising=False)
    monkeypatch.delenv("UNSET_B", raising=False)
    links = [
        {"backend": "chat", "model": "a", "api_key_env": "UNSET_A"},
        {"backend": "responses", "model": "b", "api_key_env": "UNSET_B"},
    ]
    job = _drive(_keyed_steps(store, backend, scheduler, fake_redis, links), scheduler,
                 _submit(store))  # fmt: skip
    assert job.status == JobStatus.FAILED
    assert job.error["code"] == "all_links_failed"
    assert "chat:a: link_unusable" in job.error["message"] and "UNSET_A" in job.error["message"]
    assert "responses:b: link_unusable" in job.error["message"]
    assert "UNSET_B" in job.error["message"]
    assert [a["code"] for a in job.attempts] == ["link_unusable", "link_unusable"]
    assert backend.calls == []
