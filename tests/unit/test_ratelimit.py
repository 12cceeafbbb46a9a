"""The Redis token bucket, on fakeredis (which runs the real Lua script via lupa)."""

from __future__ import annotations

import threading

import fakeredis
import pytest

from runq.runs import keys
from runq.runs.ratelimit import (
    DEFAULT_OUTPUT_TOKENS,
    Acquired,
    BucketLevels,
    RateLimiter,
    estimate_tokens,
    parse_duration,
)

T0 = 1_800_000_000.0


class Clock:
    """A settable clock, so every wait is exact."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def approx(value: float) -> object:
    """Exact to the microsecond (Redis TIME's resolution; floats near T0 hold ~1e-7 s)."""
    return pytest.approx(value, abs=1e-6)


# --- requests dimension --------------------------------------------------------------


def test_burst_then_exact_wait_for_the_next_request(redis, clock):
    limiter = RateLimiter(redis, "chat:m", rpm=60, tpm=None, clock=clock)
    for _ in range(60):
        assert limiter.acquire(0).ok
    refused = limiter.acquire(0)
    assert refused.ok is False
    assert refused.wait == approx(1.0)  # 60 rpm refills one request per second
    clock.advance(0.25)
    assert limiter.acquire(0).wait == approx(0.75)
    clock.advance(0.75)
    assert limiter.acquire(0) == Acquired(True, 0.0, 0)
    assert limiter.acquire(0).wait == approx(1.0)


def test_refusal_takes_nothing(redis, clock):
    limiter = RateLimiter(redis, "l", rpm=120, tpm=None, clock=clock)
    for _ in range(120):
        assert limiter.acquire().ok
    for _ in range(10):
        assert not limiter.acquire().ok
    assert limiter.levels().requests == approx(0.0)
    clock.advance(0.5)  # 2 per second
    assert limiter.acquire().ok
    assert not limiter.acquire().ok


def test_refill_is_continuous_and_capped(redis, clock):
    limiter = RateLimiter(redis, "l", rpm=600, tpm=None, clock=clock)
    for _ in range(100):
        assert limiter.acquire().ok
    clock.advance(3.0)  # 10 per second
    assert limiter.levels().requests == approx(530.0)
    clock.advance(3600.0)
    assert limiter.levels() == BucketLevels(600.0, 600.0, None, None)


def test_configurable_burst(redis, clock):
    limiter = RateLimiter(redis, "l", rpm=60, tpm=None, clock=clock, burst_requests=5)
    assert [limiter.acquire().ok for _ in range(6)] == [True] * 5 + [False]
    clock.advance(3600)
    assert limiter.levels().requests == approx(5.0)


# --- tokens dimension and both together ----------------------------------------------


def test_tokens_exact_wait(redis, clock):
    limiter = RateLimiter(redis, "l", rpm=None, tpm=6000, clock=clock)  # 100 tokens/s
    assert limiter.acquire(5000) == Acquired(True, 0.0, 5000)
    refused = limiter.acquire(3000)
    assert refused == Acquired(False, refused.wait, 3000)
    assert refused.wait == approx(20.0)  # 1000 there, 2000 missing at 100/s
    assert limiter.acquire(1000).ok  # a smaller request still fits
    clock.advance(29.99)
    assert limiter.acquire(3000).wait == approx(0.01)
    clock.advance(0.01)
    assert limiter.acquire(3000).ok


def test_wait_is_the_longer_of_both_dimensions(redis, clock):
    # 60 rpm (1/s) and 600 tpm (10/s).
    limiter = RateLimiter(redis, "l", rpm=60, tpm=600, clock=clock)
    assert limiter.acquire(600).ok  # all tokens, one request
    # Requests are plentiful, tokens are not: 100 tokens take 10 s.
    assert limiter.acquire(100).wait == approx(10.0)
    clock.advance(10.0)
    assert limiter.acquire(100).ok

    other = RateLimiter(redis, "k", rpm=60, tpm=600, clock=clock, burst_requests=1)
    assert other.acquire(1).ok
    # Tokens are plentiful, requests are not: the next request is 1 s away.
    assert other.acquire(1).wait == approx(1.0)


def test_takes_both_or_nothing(redis, clock):
    limiter = RateLimiter(redis, "l", rpm=60, tpm=600, clock=clock)
    assert limiter.acquire(500).ok
    before = limiter.levels()
    assert not limiter.acquire(200).ok  # tokens missing: no request taken either
    assert limiter.levels() == before
    assert before == BucketLevels(59.0, 60.0, 100.0, 600.0)


def test_estimate_larger_than_capacity_is_charged_as_a_full_bucket(redis, clock):
    limiter = RateLimiter(redis, "l", rpm=None, tpm=600, clock=clock)
    assert limiter.acquire(100).ok
    big = limiter.acquire(10_000)
    assert big == Acquired(False, big.wait, 600)
    assert big.wait == approx(10.0)  # waits for a full bucket, not forever
    clock.advance(10.0)
    assert limiter.acquire(10_000) == Acquired(True, 0.0, 600)


# --- correction ----------------------------------------------------------------------


def test_correct_refunds_an_overestimate(redis, clock):
    limiter = RateLimiter(redis, "l", rpm=60, tpm=6000, clock=clock)
    got = limiter.acquire(4000)
    limiter.correct(got.tokens, 1500)
    assert limiter.levels().tokens == approx(4500.0)


def test_correct_refund_never_exceeds_capacity(redis, clock):
    limiter = RateLimiter(redis, "l", rpm=60, tpm=6000, clock=clock)
    limiter.acquire(1000)
    clock.advance(600)
    limiter.correct(1000, 0)
    assert limiter.levels().tokens == approx(6000.0)


def test_correct_charges_an_underestimate_into_debt(redis, clock):
    limiter = RateLimiter(redis, "l", rpm=60, tpm=6000, clock=clock)
    got = limiter.acquire(5000)
    limiter.correct(got.tokens, 8000)  # used 3000 more than the bucket held
    assert limiter.levels().tokens == approx(-2000.0)
    # Debt is repaid before anyone gets tokens again: 2100 missing at 100/s.
    assert limiter.acquire(100).wait == approx(21.0)


def test_correct_is_a_no_op_without_a_token_limit(redis, clock):
    limiter = RateLimiter(redis, "l", rpm=60, tpm=None, clock=clock)
    limiter.acquire(0)
    limiter.correct(100, 10_000)
    assert limiter.levels() == BucketLevels(59.0, 60.0, None, None)


# --- calibration ---------------------------------------------------------------------


def test_calibrate_never_above_what_the_server_says_remains(redis, clock):
    limiter = RateLimiter(redis, "l", rpm=600, tpm=60_000, clock=clock)
    levels = limiter.calibrate(
        {
            "x-ratelimit-limit-requests": "600",
            "x-ratelimit-remaining-requests": "100",
            "x-ratelimit-reset-requests": "50s",  # 500 missing at 10/s: consistent
            "x-ratelimit-limit-tokens": "60000",
            "x-ratelimit-remaining-tokens": "59000",
            "x-ratelimit-reset-tokens": "1s",
        }
    )
    assert levels == BucketLevels(100.0, 600.0, 59_000.0, 60_000.0)
    assert limiter.levels() == levels


def test_calibrate_does_not_raise_a_level(redis, clock):
    limiter = RateLimiter(redis, "l", rpm=60, tpm=None, clock=clock)
    for _ in range(50):
        limiter.acquire()
    levels = limiter.calibrate({"x-ratelimit-remaining-requests": "59"})
    assert levels is not None
    assert levels.requests == approx(10.0)


def test_calibrate_lower_server_limit_lowers_rate_and_capacity(redis, clock):
    limiter = RateLimiter(redis, "l", rpm=600, tpm=None, clock=clock)
    levels = limiter.calibrate(
        {"X-RateLimit-Limit-Requests": "120", "X-RateLimit-Remaining-Requests": "0"}
    )
    assert levels == BucketLevels(0.0, 120.0, None, None)
    assert limiter.acquire().wait == approx(0.5)  # 120 rpm, not 600
    clock.advance(3600)
    assert limiter.levels().requests == approx(120.0)
    # A higher server limit never raises us above our own configuration.
    limiter.calibrate({"x-ratelimit-limit-requests": "10000"})
    clock.advance(3600)
    assert limiter.levels() == BucketLevels(600.0, 600.0, None, None)


def test_calibrate_reset_slower_than_our_refill(redis, clock):
    """The server will be full in 6 minutes; our 1 token/s would refill it in 1."""
    limiter = RateLimiter(redis, "l", rpm=None, tpm=60, clock=clock)
    levels = limiter.calibrate(
        {"x-ratelimit-remaining-tokens": "30", "x-ratelimit-reset-tokens": "6m0s"}
    )
    assert levels is not None
    assert levels.tokens == approx(60 - 360)
    assert limiter.acquire(1).wait == approx(301.0)


def test_calibrate_ignores_missing_and_malformed_headers(redis, clock):
    limiter = RateLimiter(redis, "l", rpm=60, tpm=600, clock=clock)
    assert limiter.calibrate({"content-type": "application/json"}) is None
    levels = limiter.calibrate(
        {
            "x-ratelimit-remaining-requests": "lots",
            "x-ratelimit-reset-tokens": "soon",
            "x-ratelimit-remaining-tokens": "500",
        }
    )
    assert levels == BucketLevels(60.0, 60.0, 500.0, 600.0)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("0.5s", 0.5),
        ("7.66s", 7.66),
        ("150us", 0.00015),
        ("2", 2.0),
        ("", None),
        ("soon", None),
        ("5 parsecs", None),
        (None, None),
    ],
)
def test_parse_duration(text, seconds):
    result = parse_duration(text)
    if seconds is None:
        assert result is None
    else:
        assert result == pytest.approx(seconds)


# --- housekeeping --------------------------------------------------------------------


def test_disabled_limiter_never_touches_redis():
    class NoRedis:
        def register_script(self, script):
            raise AssertionError("a disabled limiter must not touch Redis")

    for rpm, tpm in ((None, None), (0, 0), (0, None)):
        limiter = RateLimiter(NoRedis(), "l", rpm=rpm, tpm=tpm)
        assert limiter.enabled is False
        assert limiter.acquire(10**9) == Acquired(True, 0.0, 10**9)
        limiter.correct(1, 1000)
        assert limiter.calibrate({"x-ratelimit-remaining-requests": "0"}) is None
        assert limiter.levels() == BucketLevels(None, None, None, None)


def test_key_name_and_idle_expiry(redis, clock):
    limiter = RateLimiter(redis, "responses:gpt-5", rpm=60, tpm=None, clock=clock)
    for _ in range(60):
        limiter.acquire()
    assert redis.exists(keys.rate_bucket("responses:gpt-5"))
    # Empty at 1/s: full again in 60 s, plus 60 s of slack. The TTL counts down between
    # the script's PEXPIRE and this PTTL (fakeredis 2.41 shows it, as real Redis may).
    assert 119_000 < redis.pttl(keys.rate_bucket("responses:gpt-5")) <= 120_000


def test_each_link_has_its_own_bucket(redis, clock):
    a = RateLimiter(redis, "a", rpm=1, tpm=None, clock=clock)
    b = RateLimiter(redis, "b", rpm=1, tpm=None, clock=clock)
    assert a.acquire().ok
    assert not a.acquire().ok
    assert b.acquire().ok


def test_redis_server_time_is_used_without_a_clock(redis):
    limiter = RateLimiter(redis, "l", rpm=60, tpm=None)
    for _ in range(60):
        assert limiter.acquire().ok
    refused = limiter.acquire()
    assert not refused.ok
    assert 0.0 < refused.wait <= 1.0


def test_estimate_tokens():
    assert estimate_tokens("x" * 400, 100) == 200
    assert estimate_tokens("x" * 401, 0) == 101
    assert estimate_tokens("", None) == DEFAULT_OUTPUT_TOKENS
    assert estimate_tokens("", 0) == 1


# --- concurrency ---------------------------------------------------------------------


def _race(server, threads_n: int, tries: int, estimate, **limits) -> list[Acquired]:
    """`threads_n` threads, each with its own connection, race for one bucket."""
    results: list[Acquired] = []
    lock = threading.Lock()
    start = threading.Barrier(threads_n)

    def worker(index: int) -> None:
        limiter = RateLimiter(fakeredis.FakeRedis(server=server), "shared", **limits)
        start.wait()
        mine = [limiter.acquire(estimate(index)) for _ in range(tries)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == threads_n * tries
    return results


def test_threads_never_over_grant_tokens(clock):
    """At a frozen time, what was granted plus what remains is exactly the capacity."""
    server = fakeredis.FakeServer()
    results = _race(server, 16, 40, lambda i: 37 + 11 * i, rpm=1000, tpm=10_000, clock=clock)
    granted = [r for r in results if r.ok]
    levels = RateLimiter(fakeredis.FakeRedis(server=server), "shared", 1000, 10_000, clock).levels()
    assert levels.tokens is not None
    assert levels.requests is not None
    assert 0.0 <= levels.tokens < 37 + 11 * 15  # the largest estimate no longer fits
    assert sum(r.tokens for r in granted) == pytest.approx(10_000 - levels.tokens)
    assert len(granted) == pytest.approx(1000 - levels.requests)
    # Every refusal took nothing and named a positive wait.
    assert all(r.wait > 0 for r in results if not r.ok)


def test_threads_grant_exactly_the_capacity(clock):
    results = _race(fakeredis.FakeServer(), 12, 30, lambda i: 90, rpm=50, tpm=5000, clock=clock)
    # 5000 tokens / 90 per call = 55 calls, but only 50 requests: requests bind.
    assert sum(r.ok for r in results) == 50


def test_threads_with_a_moving_clock_stay_within_rate(clock):
    """Time advances under the racing threads: grants <= burst + rate * elapsed."""
    lock = threading.Lock()
    ticks = Clock(T0)

    def moving() -> float:
        with lock:
            ticks.advance(0.001)
            return ticks.now

    results = _race(
        fakeredis.FakeServer(),
        8,
        50,
        lambda i: 0,
        rpm=600,
        tpm=None,
        clock=moving,
        burst_requests=20,
    )
    elapsed = ticks.now - T0  # 400 calls, 1 ms each: 0.4 s, so 4 more requests
    granted = sum(r.ok for r in results)
    assert 20 <= granted <= 20 + 10 * elapsed + 1e-6


def test_a_clock_behind_the_bucket_refills_nothing_twice(redis, clock):
    """Workers' clocks may disagree when they pass `clock`; seconds are counted once."""
    limiter = RateLimiter(redis, "l", rpm=60, tpm=None, clock=clock)
    for _ in range(60):
        assert limiter.acquire().ok
    clock.advance(2.0)
    assert limiter.acquire().ok  # 2 refilled, 1 left
    clock.advance(-1.0)  # a worker whose clock is a second behind
    assert limiter.levels().requests == approx(1.0)
    clock.advance(1.0)  # back in step: the same second must not refill again
    assert limiter.levels().requests == approx(1.0)
    assert limiter.acquire().ok
    assert limiter.acquire().wait == approx(1.0)
