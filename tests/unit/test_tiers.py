"""Cost tiers: validation, auto's rule, costs, flex refusals, and a batch-tier job's
life on the job's side (fakeredis; the backend's request is taken, never sent)."""

from __future__ import annotations

import json
import time

import openai
import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from runq.errors import BackendError, ConfigurationError, InvalidJobError
from runq.runs import tiers
from runq.runs.backends.responses import ResponsesBackend
from runq.runs.batcher.queue import BatchQueue
from runq.runs.chains import Link, parse_chains
from runq.runs.job import Job, JobSpec, JobStatus
from runq.runs.metrics import Metrics
from runq.runs.retry import RetryPolicies
from runq.runs.step_config import StepConfig
from runq.runs.steps import Steps
from runq.runs.tiers import TierPolicy

PRICES = {"gpt-5-mini": (0.25, 2.0)}


# -- validation -------------------------------------------------------------------------
def test_a_job_takes_each_tier_and_refuses_others_by_name() -> None:
    for tier in tiers.TIERS:
        JobSpec(input="q", tier=tier).validate()
    with pytest.raises(InvalidJobError, match="tier: must be one of auto, standard"):
        JobSpec(input="q", tier="cheap").validate()


def test_assistants_refuse_tiers_they_cannot_carry() -> None:
    JobSpec(input="q", backend="assistants", tier="standard").validate()
    with pytest.raises(InvalidJobError, match="assistants backend cannot run tier 'flex'"):
        JobSpec(input="q", backend="assistants", tier="flex").validate()
    with pytest.raises(InvalidJobError, match="no batch endpoint"):
        JobSpec(input="q", backend="assistants", tier="batch").validate()


def test_batch_refuses_stream_mode_and_a_disagreeing_service_tier() -> None:
    with pytest.raises(InvalidJobError, match="cannot stream"):
        JobSpec(input="q", tier="batch", mode="stream").validate()
    with pytest.raises(InvalidJobError, match="disagree"):
        JobSpec(input="q", tier="flex", service_tier="priority").validate()
    JobSpec(input="q", tier="flex", service_tier="flex").validate()


def test_a_link_tier_is_checked_with_the_configuration() -> None:
    chains = parse_chains({"c": [{"backend": "responses", "model": "m", "tier": "batch"}]})
    assert chains["c"][0].tier == "batch"
    with pytest.raises(ConfigurationError, match="link 1: tier: the assistants backend"):
        parse_chains({"c": [{"backend": "assistants", "model": "m", "tier": "flex"}]})
    with pytest.raises(ConfigurationError, match="only a model link takes a tier"):
        parse_chains({"c": [{"kind": "template", "message": "x", "tier": "flex"}]})


# -- auto -------------------------------------------------------------------------------
def test_auto_picks_the_cheapest_tier_that_fits_with_the_margin() -> None:
    policy = TierPolicy(expected={"batch": 3600, "flex": 300, "standard": 60, "priority": 20})
    assert policy.choose(24 * 3600, backend="responses").tier == "batch"
    assert policy.choose(1000, backend="responses").tier == "flex"  # 300 x 2 fits
    short = policy.choose(300, backend="responses")
    assert short.tier == "standard"
    assert "too short for batch, flex" in short.reason
    assert policy.choose(24 * 3600, backend="responses", mode="stream").tier == "flex"
    assert policy.choose(24 * 3600, backend="assistants").tier == "standard"
    assert policy.choose(None, backend="responses").tier == "standard"
    fast = TierPolicy(auto_priority=True)
    assert fast.choose(10, backend="responses").tier == "priority"


def test_resolve_writes_the_choice_and_the_service_tier() -> None:
    job = Job.new(JobSpec(input="q", tier="flex").validate())
    assert tiers.resolve(job, Link(), TierPolicy(), 600) == "flex"
    assert job.spec.service_tier == "flex"
    assert job.result()["tier"] == {
        "requested": "flex", "chosen": "flex", "reason": "flex: asked for by the job",
    }  # fmt: skip
    linked = Job.new(JobSpec(input="q").validate())
    assert tiers.resolve(linked, Link(tier="batch"), TierPolicy(), 600) == "batch"
    assert linked.spec.service_tier is None
    plain = Job.new(JobSpec(input="q", service_tier="priority").validate())
    assert tiers.resolve(plain, Link(), TierPolicy(), 600) is None  # untouched
    assert plain.spec.service_tier == "priority"


# -- costs ------------------------------------------------------------------------------
def test_cost_is_priced_by_tier_against_standard() -> None:
    policy = TierPolicy(prices=PRICES)
    usage = {"batch": {"input_tokens": 1_000_000, "output_tokens": 1_000_000}}
    cost = tiers.cost("gpt-5-mini", usage, PRICES["gpt-5-mini"], policy)
    assert cost["usd"] == pytest.approx(1.125)
    assert cost["standard_usd"] == pytest.approx(2.25)
    priority = tiers.cost("gpt-5-mini", {"priority": usage["batch"]}, PRICES["gpt-5-mini"], policy)
    assert priority["usd"] == pytest.approx(4.5)
    unpriced = tiers.cost("own-model", usage, None, policy)
    assert unpriced["usd"] is None and unpriced["by_tier"]["batch"]["input_tokens"] == 1_000_000


# -- steps ------------------------------------------------------------------------------
def _steps(store, backend, scheduler, policy: TierPolicy | None = None) -> Steps:
    return Steps(
        store, lambda job, link: backend, scheduler, lambda job_id, rnd: {},
        config=StepConfig(), retry=RetryPolicies(test_mode=True),
        tier_policy=policy or TierPolicy(prices=PRICES),
    )  # fmt: skip


def _submit(store, **spec) -> Job:
    job = Job.new(JobSpec(input="hello", model="gpt-5-mini", **spec).validate())
    store.create(job, [], lease_until=time.time() + 60)
    return job


def _flex_refusal() -> BackendError:
    err = BackendError("the backend is rate limiting (HTTP 429: resource_unavailable)",
                       code="rate_limited", retryable=True, retry_after=1.0)  # fmt: skip
    return err


def test_flex_refused_moves_the_job_to_standard_and_says_so(store, backend, scheduler) -> None:
    from runq.runs.backends.base import RunState

    answer = RunState("completed", handle={"response_id": "r"}, output_text="ok",
                      usage={"input_tokens": 10, "output_tokens": 10})  # fmt: skip
    backend.states = [_flex_refusal(), answer]
    steps = _steps(store, backend, scheduler)
    job = _submit(store, tier="flex")
    assert steps.run("start", job.id, 0) == "retrying"
    step, _, token, countdown = scheduler.last()
    assert (step, countdown) == ("start", 0)
    assert steps.run("start", job.id, token) == JobStatus.SUCCEEDED
    done = store.get(job.id)
    assert done.attempts[0]["code"] == "resource_unavailable"
    assert done.attempts[0]["then"] == "standard"
    assert done.tier["chosen"] == "standard" and done.tier["moves"][0]["from"] == "flex"
    assert done.spec.service_tier == "default"
    assert done.cost["by_tier"] == {"standard": {"input_tokens": 10, "output_tokens": 10,
                                                 "usd": pytest.approx(0.0000225)}}  # fmt: skip


def test_flex_refused_retries_on_flex_when_configured(store, backend, scheduler) -> None:
    backend.states = [_flex_refusal()]
    steps = _steps(store, backend, scheduler, TierPolicy(flex_on_unavailable="retry"))
    job = _submit(store, tier="flex")
    assert steps.run("start", job.id, 0) == "retrying"
    again = store.get(job.id)
    assert again.attempts[0]["then"] == "flex"
    assert again.tier["chosen"] == "flex"


def _batch_steps(store, scheduler):
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0)
    backend = ResponsesBackend(client)  # its request is taken, never sent
    return _steps(store, backend, scheduler), BatchQueue(store.redis)


def test_a_batch_job_queues_its_line_then_succeeds_from_the_outcome(
    store, scheduler, fake_redis
) -> None:
    steps, queue = _batch_steps(store, scheduler)
    job = _submit(store, tier="batch", deadline=3600)
    assert steps.run("start", job.id, 0) == "waiting"
    waiting = store.get(job.id)
    line_id = waiting.handle["batch_line"]
    assert line_id == f"{job.id}:0:0"
    (group,) = queue.groups()
    queued = queue.queued(group, 10)
    assert queued.ids == [line_id]
    step, _, token, countdown = scheduler.last()
    assert step == "batch" and countdown == pytest.approx(3600, abs=5)
    # Sent early (a duplicate, say): no outcome yet, it waits again.
    assert steps.run("batch", job.id, token) == "waiting"
    body = {
        "id": "resp_b", "object": "response", "status": "completed", "output": [
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "batched answer", "annotations": []}]}],
        "usage": {"input_tokens": 1000, "output_tokens": 1000, "total_tokens": 2000},
    }  # fmt: skip
    queue.store_outcomes({line_id: {"kind": "output", "body": body, "batch_id": "batch_1"}})
    assert steps.run("batch", job.id, token) == JobStatus.SUCCEEDED
    assert steps.run("batch", job.id, token) == "stale"  # applied once only
    done = store.get(job.id).result()
    assert done["output_text"] == "batched answer"
    assert done["tier"]["chosen"] == "batch"
    assert done["cost"]["usd"] == pytest.approx(done["cost"]["standard_usd"] / 2)
    assert done["usage"]["total_tokens"] == 2000


def test_a_failed_line_sends_the_job_along_its_chain(store, scheduler) -> None:
    steps, queue = _batch_steps(store, scheduler)
    job = _submit(store, tier="batch", deadline=3600)
    steps.run("start", job.id, 0)
    token = scheduler.last()[2]
    line_id = store.get(job.id).handle["batch_line"]
    queue.store_outcomes({line_id: {"kind": "error", "code": "batch_expired",
                                    "message": "the batch ended expired"}})  # fmt: skip
    assert steps.run("batch", job.id, token) == "batch_expired"  # one link: it fails
    failed = store.get(job.id)
    assert failed.status == JobStatus.FAILED
    assert failed.attempts[0]["code"] == "batch_expired"


def test_an_auto_job_leaves_a_slow_batch_for_standard(store, scheduler) -> None:
    steps, _ = _batch_steps(store, scheduler)
    job = _submit(store, tier="auto", deadline=24 * 3600)
    steps.run("start", job.id, 0)
    step, _, token, countdown = scheduler.last()
    assert step == "batch"
    assert countdown == pytest.approx(24 * 3600 - 120, abs=5)  # when standard still fits
    record = store.get(job.id)
    record.timings["queued_at"] -= 24 * 3600 - 100  # the deadline came near
    store.redis.set(f"runq:job:{job.id}", json.dumps(record.to_dict()))
    assert steps.run("batch", job.id, token) == "retrying"
    moved = store.get(job.id)
    assert moved.tier["chosen"] == "standard" and moved.tier["pinned"] == "standard"
    assert scheduler.last()[0] == "start"


def test_prometheus_gets_cost_by_tier_and_model(fake_redis) -> None:
    metrics = Metrics(fake_redis, prices=PRICES)
    metrics.job_finished(status="succeeded", source="responses:gpt-5-mini", model="gpt-5-mini",
                         latency_s=1.0, input_tokens=10, output_tokens=10,
                         tier_costs={"batch": 0.25, "standard": 0.5})  # fmt: skip
    snapshot = metrics.snapshot()
    assert snapshot[("tier_cost_usd", (("model", "gpt-5-mini"), ("tier", "batch")))] == 0.25
    assert snapshot[("tier_cost_usd", (("model", "gpt-5-mini"), ("tier", "standard")))] == 0.5
    registry = CollectorRegistry()
    registry.register(metrics.collector())
    text = generate_latest(registry).decode()
    assert 'runq_tier_cost_usd_total{model="gpt-5-mini",tier="batch"} 0.25' in text
