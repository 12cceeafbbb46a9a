"""Budgets on fakeredis: reserve at admission, settle at the end, wait or fail over them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import fakeredis
import pytest

from runq.errors import ConfigurationError
from runq.runs import keys
from runq.runs.budgets import BudgetBook, estimate, parse_budgets
from runq.runs.fairness import Admission
from runq.runs.job import Job, JobSpec

PRICES = {"gpt-5-mini": (0.25, 2.0)}
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC).timestamp()


def job(n: int, tenant: str = "acme", **spec: Any) -> Job:
    return Job.new(JobSpec(input="x" * 400, tenant=tenant, max_output_tokens=100, **spec), f"j{n}")


def book(redis: fakeredis.FakeRedis, **budget: Any) -> BudgetBook:
    return BudgetBook(redis, {"acme": budget}, prices=PRICES)


def test_the_estimate_counts_input_characters_and_the_output_allowance() -> None:
    usd, tokens = estimate(JobSpec(input="x" * 400, max_output_tokens=100), 1024, PRICES)
    assert tokens == 100 + 100
    assert usd == pytest.approx((100 * 0.25 + 100 * 2.0) / 1e6)
    _, default_out = estimate(JobSpec(input="abc"), 1024, PRICES)
    assert default_out == 1 + 1024


def test_200_concurrent_admissions_spend_no_more_than_the_budget_allows(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    # each job estimates 200 tokens; the budget fits 50 of them
    admission = Admission(fake_redis, budgets=book(fake_redis, tokens=50 * 200, over="wait"))
    for n in range(200):
        admission.push(job(n))

    def admit_some(_: int) -> list[str]:
        return admission.admit(now=NOW, window=1000).admitted

    with ThreadPoolExecutor(8) as pool:
        admitted = [j for batch in pool.map(admit_some, range(16)) for j in batch]
    assert len(admitted) == 50
    assert len(set(admitted)) == 50
    state = admission.budgets.state("acme", NOW)
    assert state["tokens"]["reserved"] == 50 * 200
    assert state["tokens"]["remaining"] == 0
    assert admission.waiting_by_tenant() == {"acme": 150}  # the rest wait


def test_settling_books_the_reported_usage_and_frees_the_rest(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    budgets = book(fake_redis, tokens=400, over="wait")
    admission = Admission(fake_redis, budgets=budgets)
    for n in range(3):
        admission.push(job(n))
    assert admission.admit(now=NOW, window=10).admitted == ["j0", "j1"]
    first = job(0)
    first.usage = {"input_tokens": 90, "output_tokens": 10}
    assert budgets.settle(first) is True
    assert budgets.settle(first) is False  # settled once only
    state = budgets.state("acme", NOW)
    assert state["tokens"] == {"limit": 400, "spent": 100, "reserved": 200, "remaining": 100.0}
    # j2's 200 do not fit in the 100 left: the lane is held, looked at again soon
    assert admission.admit(now=NOW + 10, window=10).admitted == []


def test_a_fail_budget_refuses_and_a_held_tenant_does_not_block_others(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    budgets = BudgetBook(
        fake_redis,
        {"acme": {"tokens": 200, "over": "fail"}, "beta": {"tokens": 200, "over": "wait"}},
        prices=PRICES,
    )
    admission = Admission(fake_redis, budgets=budgets)
    for n in range(3):
        admission.push(job(n))
    for n in range(3, 6):
        admission.push(job(n, tenant="beta"))
    admission.push(job(9, tenant="gamma"))
    result = admission.admit(now=NOW, window=10)
    assert sorted(result.admitted) == ["j0", "j3", "j9"]
    assert result.refused == [("j1", "acme", "budget_spent"), ("j2", "acme", "budget_spent")]
    assert [(lane, scope, j) for lane, _, scope, j in result.held] == [("beta", "beta", "j4")]
    until = result.held[0][1]
    assert until == datetime(2026, 11, 30, tzinfo=UTC).timestamp()  # the day's end
    assert admission.waiting_by_tenant() == {"beta": 2}


def test_a_job_bigger_than_the_whole_budget_fails_even_when_over_says_wait(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    admission = Admission(fake_redis, budgets=book(fake_redis, tokens=150, over="wait"))
    admission.push(job(0))
    result = admission.admit(now=NOW, window=10)
    assert result.refused == [("j0", "acme", "estimate_exceeds_budget")]


def test_a_batch_label_has_a_budget_of_its_own(fake_redis: fakeredis.FakeRedis) -> None:
    budgets = BudgetBook(
        fake_redis, {"batch:nightly": {"tokens": 200, "over": "fail"}}, prices=PRICES
    )
    admission = Admission(fake_redis, budgets=budgets)
    admission.push(job(0, metadata={"batch": "nightly"}))
    admission.push(job(1, metadata={"batch": "nightly"}))
    admission.push(job(2))
    result = admission.admit(now=NOW, window=10)
    assert sorted(result.admitted) == ["j0", "j2"]
    assert [r[0] for r in result.refused] == ["j1"]


def test_monthly_periods_and_the_refusal_a_gateway_answers_with(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    budgets = BudgetBook(
        fake_redis, {"acme": {"usd": 0.0001, "period": "month", "over": "fail"}}, prices=PRICES
    )
    period, until = budgets.budgets["acme"].period_bounds(NOW)
    assert period == "2026-11"
    assert until == datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    assert budgets.refusing(job(0).spec, NOW) is not None  # its estimate does not fit
    assert budgets.refusing(job(0, tenant="beta").spec, NOW) is None


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ({"acme": {"period": "day"}}, "needs a limit"),
        ({"acme": {"usd": -1}}, "acme'].usd"),
        ({"acme": {"usd": 1, "period": "week"}}, "period"),
        ({"acme": {"usd": 1, "over": "skip"}}, "over"),
        ({"acme": {"usd": 1, "cents": 1}}, "cents"),
        ({"bad name!": {"usd": 1}}, "bad name"),
    ],
)
def test_bad_budgets_are_refused_by_name(raw: dict[str, object], names: str) -> None:
    with pytest.raises(ConfigurationError, match="RUNQ_BUDGETS") as caught:
        parse_budgets(raw)
    assert names in str(caught.value)


def test_prometheus_and_runq_budgets_show_spend_reserved_and_remaining(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    from prometheus_client import generate_latest

    from runq.producers.cli.budgets import rows
    from runq.producers.ops.metrics_server import build_registry

    budgets = {"acme": {"tokens": 1000, "over": "wait"}}
    admission = Admission(fake_redis, budgets=BudgetBook(fake_redis, budgets, prices=PRICES))
    for n in range(3):
        admission.push(job(n))
    admission.push(job(7, tenant="beta"))
    now = datetime.now(UTC).timestamp()
    assert admission.admit(now=now, window=2).admitted == ["j0", "j7"]
    text = generate_latest(build_registry(fake_redis, PRICES, queues=(), budgets=budgets))
    lines = set(text.decode().splitlines())
    assert 'runq_budget_reserved{budget="acme",unit="tokens"} 200.0' in lines
    assert 'runq_budget_remaining{budget="acme",unit="tokens"} 800.0' in lines
    assert 'runq_tenant_waiting_jobs{tenant="acme"} 2.0' in lines
    assert 'runq_tenant_in_flight_jobs{tenant="beta"} 1.0' in lines
    [row] = rows(admission.budgets.states(now))
    assert row[:7] == ["acme", row[1], "tokens", "1,000", "0", "200", "800"]


def test_the_release_of_an_ended_job_settles_its_reservation_in_the_same_call(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    budgets = book(fake_redis, tokens=1000, over="wait")
    admission = Admission(fake_redis, budgets=budgets)
    admission.push(job(0))
    admission.push(job(1, tenant="beta"))  # under no budget
    assert admission.admit(now=NOW, window=10).admitted == ["j0", "j1"]
    assert budgets.state("acme", NOW)["tokens"]["reserved"] == 200
    ended = job(0)
    ended.usage = {"input_tokens": 90, "output_tokens": 10}
    assert admission.release("j0", spent=budgets.spent(ended)) is True
    state = budgets.state("acme", NOW)["tokens"]
    assert (state["spent"], state["reserved"]) == (100, 0)
    assert budgets.settle(ended) is False  # settled once only
    assert admission.release("j0", spent=budgets.spent(ended)) is False
    assert budgets.state("acme", NOW)["tokens"]["spent"] == 100
    # A job under no budget was admitted as holding none: its release settles nothing.
    assert fake_redis.hmget(keys.fair("running"), "j1", "j1|0") == [b"beta", b"1"]
    assert admission.release("j1", spent=(0.5, 999)) is True
    assert admission.inflight_by_tenant() == {}


def test_a_release_without_usage_and_one_of_a_job_an_older_worker_admitted(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    budgets = book(fake_redis, tokens=1000, over="wait")
    admission = Admission(fake_redis, budgets=budgets)
    for n in range(2):
        admission.push(job(n))
    assert admission.admit(now=NOW, window=10).admitted == ["j0", "j1"]
    # A record that is gone (the sweeper): its place is given back, its usage unknown.
    assert admission.release("j0") is True
    assert budgets.state("acme", NOW)["tokens"]["reserved"] == 400
    # A job admitted without the mark (it reserved, or an older worker admitted it) is
    # looked up.
    fake_redis.hset(keys.fair("running"), "j1", "acme")
    fake_redis.hdel(keys.fair("running"), "j1|0")
    assert admission.release("j1", spent=(0.0, 50)) is True
    state = budgets.state("acme", NOW)["tokens"]
    assert (state["spent"], state["reserved"]) == (50, 200)
