"""The shared circuit breaker, on fakeredis (the real Lua script via lupa)."""

from __future__ import annotations

import threading

import fakeredis
import pytest

from runq.runs import keys
from runq.runs.breaker import Admission, CircuitBreaker

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _breaker(redis, clock, **kwargs) -> CircuitBreaker:
    kwargs.setdefault("failure_threshold", 3)
    kwargs.setdefault("open_seconds", 10.0)
    return CircuitBreaker(redis, "responses:gpt-5", clock=clock, **kwargs)


def test_starts_closed_and_allows(redis, clock):
    breaker = _breaker(redis, clock)
    assert breaker.state() == "closed"
    assert breaker.allow() is True
    assert not redis.exists(keys.breaker("responses:gpt-5"))


def test_a_clean_breaker_says_so_and_a_success_on_it_writes_nothing(redis, clock):
    # Most calls meet a closed breaker with no failures: their success is skipped
    # (`BreakerPass.answered`), and one reported anyway deletes nothing.
    breaker = _breaker(redis, clock)
    assert breaker.ask().clean is True
    assert breaker.record_success() == "closed"
    assert not redis.exists(keys.breaker("responses:gpt-5"))
    breaker.record_failure()
    admission = breaker.ask()
    assert admission.allowed and admission.state == "closed" and not admission.clean
    assert breaker.record_success() == "closed"
    assert not redis.exists(keys.breaker("responses:gpt-5"))  # the count was reset
    assert breaker.ask().clean is True


def test_opens_after_k_consecutive_failures(redis, clock):
    breaker = _breaker(redis, clock)
    assert breaker.record_failure() == "closed"
    assert breaker.record_failure() == "closed"
    assert breaker.allow() is True
    assert breaker.record_failure() == "open"
    assert breaker.state() == "open"
    assert breaker.allow() is False


def test_a_success_resets_the_consecutive_count(redis, clock):
    breaker = _breaker(redis, clock)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.record_success() == "closed"
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state() == "closed"
    assert breaker.record_failure() == "open"


def test_failures_from_several_workers_add_up(clock):
    server = fakeredis.FakeServer()
    workers = [_breaker(fakeredis.FakeRedis(server=server), clock) for _ in range(3)]
    for worker in workers:
        worker.record_failure()
    assert all(worker.state() == "open" for worker in workers)
    assert not any(worker.allow() for worker in workers)


def test_half_open_lets_a_single_probe_through(redis, clock):
    breaker = _breaker(redis, clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now = T0 + 9.999
    assert breaker.allow() is False
    clock.now = T0 + 10.0
    assert breaker.state() == "half_open"  # effective state once the period is over
    assert breaker.allow() is True  # this caller is the probe
    assert breaker.state() == "half_open"
    assert [breaker.allow() for _ in range(5)] == [False] * 5


def test_probe_success_closes(redis, clock):
    breaker = _breaker(redis, clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 10
    assert breaker.allow()
    assert breaker.record_success() == "closed"
    assert breaker.state() == "closed"
    assert all(breaker.allow() for _ in range(5))
    # Closed again from zero: it takes K fresh failures to open.
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state() == "closed"


def test_probe_failure_reopens_for_another_period(redis, clock):
    breaker = _breaker(redis, clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 10
    assert breaker.allow()
    assert breaker.record_failure() == "open"
    assert breaker.allow() is False
    clock.now += 9.5
    assert breaker.allow() is False  # the new period counts from the failed probe
    clock.now += 0.5
    assert breaker.allow() is True


def test_lost_probe_is_replaced_after_the_probe_timeout(redis, clock):
    breaker = _breaker(redis, clock, probe_timeout=5.0)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 10
    assert breaker.allow()  # this probe's worker dies and never reports
    clock.now += 4.9
    assert breaker.allow() is False
    clock.now += 0.1
    assert breaker.allow() is True
    assert breaker.allow() is False


def test_a_refused_caller_learns_when_to_ask_again(redis, clock):
    breaker = _breaker(redis, clock, probe_timeout=5.0)
    assert breaker.ask() == Admission(True, "closed", 0.0, clean=True)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 4
    refused = breaker.ask()
    assert (refused.allowed, refused.state) == (False, "open")
    assert refused.wait == pytest.approx(6.0)  # the rest of the open period
    clock.now += 6
    probe = breaker.ask()
    assert probe.allowed and probe.probe
    clock.now += 1
    waiting = breaker.ask()
    assert (waiting.allowed, waiting.state, waiting.probe) == (False, "half_open", False)
    assert waiting.wait == pytest.approx(4.0)  # until the probe would count as lost


def test_a_released_probe_lets_the_next_caller_probe_at_once(redis, clock):
    breaker = _breaker(redis, clock, probe_timeout=5.0)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 10
    assert breaker.ask().probe
    assert breaker.allow() is False
    assert breaker.release_probe() == "half_open"  # it was rate limited: no call made
    assert breaker.ask().probe  # no need to wait out the probe timeout
    assert breaker.allow() is False


def test_releasing_does_nothing_unless_half_open(redis, clock):
    breaker = _breaker(redis, clock)
    assert breaker.release_probe() == "closed"
    for _ in range(3):
        breaker.record_failure()
    assert breaker.release_probe() == "open"
    assert breaker.allow() is False


def test_results_while_open_are_stale_and_ignored(redis, clock):
    breaker = _breaker(redis, clock)
    for _ in range(3):
        breaker.record_failure()
    assert breaker.record_success() == "open"  # a call that started before it opened
    assert breaker.record_failure() == "open"
    clock.now += 10
    assert breaker.allow() is True  # the period did not restart


def test_threads_race_for_the_probe(clock):
    """Many workers see the open period end at once: exactly one becomes the probe."""
    server = fakeredis.FakeServer()
    breaker = CircuitBreaker(fakeredis.FakeRedis(server=server), "l", 1, 10.0, clock=clock)
    breaker.record_failure()
    clock.now += 10
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def worker() -> None:
        mine = CircuitBreaker(fakeredis.FakeRedis(server=server), "l", 1, 10.0, clock=clock)
        start.wait()
        allowed = [mine.allow() for _ in range(20)]
        with lock:
            results.extend(allowed)

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 240
    assert sum(results) == 1


def test_key_expires_when_idle(redis, clock):
    breaker = _breaker(redis, clock, open_seconds=10.0, probe_timeout=5.0, idle_seconds=60.0)
    breaker.record_failure()
    assert 74_000 < redis.pttl(breaker.key) <= 75_000  # ms tick between SET and PTTL
    breaker.record_success()
    assert not redis.exists(breaker.key)


def test_reset_and_validation(redis, clock):
    breaker = _breaker(redis, clock, failure_threshold=1)
    breaker.record_failure()
    assert breaker.state() == "open"
    breaker.reset()
    assert breaker.state() == "closed"
    with pytest.raises(ValueError):
        CircuitBreaker(redis, "l", failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(redis, "l", open_seconds=-1)


def test_redis_server_time_is_used_without_a_clock(redis):
    breaker = CircuitBreaker(redis, "l", failure_threshold=1, open_seconds=3600)
    assert breaker.record_failure() == "open"
    assert breaker.allow() is False
    zero = CircuitBreaker(redis, "z", failure_threshold=1, open_seconds=0)
    zero.record_failure()
    assert zero.allow() is True  # open period of 0: the next call is the probe
    assert zero.allow() is True  # ... and a probe timeout of 0 allows the next one
