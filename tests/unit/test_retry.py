"""The backoff formula and the retry decision."""

from __future__ import annotations

import random
import statistics

import pytest

from runq.errors import BackendError, ConfigurationError
from runq.runs.classify import MAX_RETRY_AFTER, classify_run_failure
from runq.runs.retry import RetryDecision, RetryPolicies, RetryPolicy


def _err(code: str, retryable: bool = True, retry_after: float | None = None) -> BackendError:
    return BackendError(code, code=code, retryable=retryable, retry_after=retry_after)


# --- the formula ---------------------------------------------------------------------


def test_bound_doubles_then_caps():
    policy = RetryPolicy(max_attempts=10, base=0.5, cap=8.0, jitter=False)
    assert [policy.bound(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert [policy.delay(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_bound_does_not_overflow():
    policy = RetryPolicy(base=0.5, cap=30.0)
    assert policy.bound(5000) == 30.0
    assert RetryPolicy(base=0.0, cap=30.0).bound(5000) == 0.0
    with pytest.raises(ValueError):
        policy.bound(-1)


def test_full_jitter_stays_within_bounds_and_spreads():
    policy = RetryPolicy(base=1.0, cap=10.0, jitter=True)
    rng = random.Random(7)
    for attempt in range(8):
        bound = policy.bound(attempt)
        samples = [policy.delay(attempt, rng=rng) for _ in range(2000)]
        assert all(0.0 <= s <= bound for s in samples)
        # Full jitter is uniform on [0, bound]: mean bound/2, spread over the whole range.
        assert statistics.fmean(samples) == pytest.approx(bound / 2, rel=0.05)
        assert min(samples) < 0.05 * bound
        assert max(samples) > 0.95 * bound
        # Each quarter of the range gets about a quarter of the samples.
        quarters = [
            sum(1 for s in samples if q * bound / 4 <= s < (q + 1) * bound / 4) for q in range(4)
        ]
        assert all(400 <= count <= 600 for count in quarters), quarters


def test_jitter_uses_the_given_rng():
    policy = RetryPolicy(base=1.0, cap=10.0)
    first = [policy.delay(3, rng=random.Random(42)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    assert first[0] == random.Random(42).uniform(0.0, 8.0)


def test_retry_after_is_honoured_and_capped():
    policy = RetryPolicy(base=0.5, cap=2.0, jitter=True)
    rng = random.Random(1)
    # Longer than the policy's cap: the server's word wins, never less than it.
    assert policy.delay(0, retry_after=7.5, rng=rng) == 7.5
    assert policy.delay(9, retry_after=0.2, rng=rng) == 0.2
    assert policy.delay(0, retry_after=10_000, rng=rng) == MAX_RETRY_AFTER
    assert policy.delay(0, retry_after=-3, rng=rng) == 0.0


def test_plain_numbers_are_accepted_and_validated():
    policy = RetryPolicy(max_attempts="4", base="0.25", cap=3, jitter=0)  # type: ignore[arg-type]
    assert (policy.max_attempts, policy.base, policy.cap, policy.jitter) == (4, 0.25, 3.0, False)
    assert isinstance(policy.cap, float)
    for bad in ({"max_attempts": 0}, {"base": -1}, {"cap": -1}, {"base": "soon"}):
        with pytest.raises(ConfigurationError):
            RetryPolicy(**bad)  # type: ignore[arg-type]


# --- the decision --------------------------------------------------------------------


def test_final_errors_never_retry():
    policies = RetryPolicies()
    for code in ("bad_request", "auth", "forbidden", "not_found", "unprocessable"):
        assert policies.decide(_err(code, retryable=False), 0) == RetryDecision(
            False, 0.0, "final_error"
        )


def test_policy_per_error_class():
    policies = RetryPolicies()
    assert policies.for_error(_err("rate_limited")) is policies.rate_limited
    for code in ("server_error", "connection", "timeout", "conflict", "something_new"):
        assert policies.for_error(_err(code)) is policies.transient
    assert policies.for_error(classify_run_failure("failed", "server_error")) is policies.run_failed
    assert policies.for_error(classify_run_failure("expired")) is policies.run_failed
    # Rate limits get more attempts and a longer cap than transient errors by default.
    assert policies.rate_limited.max_attempts > policies.transient.max_attempts
    assert policies.rate_limited.cap > policies.transient.cap


def test_retries_until_exhausted():
    policies = RetryPolicies(transient=RetryPolicy(max_attempts=3, base=1.0, cap=4.0, jitter=False))
    err = _err("server_error")
    assert policies.decide(err, 0) == RetryDecision(True, 1.0, "backoff")
    assert policies.decide(err, 1) == RetryDecision(True, 2.0, "backoff")
    assert policies.decide(err, 2) == RetryDecision(False, 0.0, "retries_exhausted")
    assert policies.decide(err, 50) == RetryDecision(False, 0.0, "retries_exhausted")


def test_single_attempt_policy_never_retries():
    policies = RetryPolicies(rate_limited=RetryPolicy(max_attempts=1))
    assert policies.decide(_err("rate_limited"), 0).reason == "retries_exhausted"


def test_decision_uses_the_servers_retry_after():
    policies = RetryPolicies()
    decision = policies.decide(_err("rate_limited", retry_after=12.0), 0, rng=random.Random(3))
    assert decision == RetryDecision(True, 12.0, "retry_after")


def test_jittered_decision_within_bound():
    policies = RetryPolicies()
    rng = random.Random(5)
    bound = policies.rate_limited.bound(3)
    delays = [policies.decide(_err("rate_limited"), 3, rng=rng).delay for _ in range(500)]
    assert all(0.0 <= d <= bound for d in delays)
    assert len(set(delays)) > 400


def test_deadline_stops_a_wait_that_would_overrun():
    policies = RetryPolicies(transient=RetryPolicy(base=4.0, cap=4.0, jitter=False))
    err = _err("timeout")
    assert policies.decide(err, 0, time_left=10.0) == RetryDecision(True, 4.0, "backoff")
    assert policies.decide(err, 0, time_left=3.0) == RetryDecision(False, 0.0, "deadline")


def test_test_mode_makes_every_delay_zero():
    policies = RetryPolicies(test_mode=True)
    rng = random.Random(0)
    for code in ("rate_limited", "server_error", "connection", "timeout", "run_failed"):
        for attempt in range(2):
            decision = policies.decide(_err(code, retry_after=30.0), attempt, rng=rng)
            assert decision.retry is True
            assert decision.delay == 0.0
            decision = policies.decide(_err(code), attempt, rng=rng)
            assert (decision.retry, decision.delay, decision.reason) == (True, 0.0, "backoff")
    # The limits still apply in test mode.
    assert policies.decide(_err("timeout"), 4).reason == "retries_exhausted"
    assert policies.decide(_err("auth", retryable=False), 0).reason == "final_error"


def test_from_mapping_with_plain_numbers():
    policies = RetryPolicies.from_mapping(
        {
            "rate_limited": {"max_attempts": 10, "cap": 90},
            "transient": {"base": "1"},
            "test_mode": 1,
        }
    )
    assert policies.rate_limited == RetryPolicy(max_attempts=10, base=1.0, cap=90.0)
    assert policies.transient.base == 1.0
    assert policies.transient.max_attempts == RetryPolicies().transient.max_attempts
    assert policies.run_failed == RetryPolicies().run_failed
    assert policies.test_mode is True
    with pytest.raises(ConfigurationError, match="unknown"):
        RetryPolicies.from_mapping({"rate_limit": {}})
    with pytest.raises(ConfigurationError):
        RetryPolicies.from_mapping({"transient": {"tries": 3}})
    with pytest.raises(ConfigurationError):
        RetryPolicies.from_mapping({"transient": 3})
