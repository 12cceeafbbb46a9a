"""The global rate limiter against a real redis-server, raced by several processes.

Each process has its own connection, as workers on different machines would; the Lua
script is what keeps them from over-granting.
"""

from __future__ import annotations

import multiprocessing
import queue
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_lib

from runq.runs import keys
from runq.runs.ratelimit import RateLimiter

pytestmark = pytest.mark.integration

PROCESSES = 6
T0 = 1_800_000_000.0
_ctx = multiprocessing.get_context("fork")


def _hammer(
    url: str,
    link: str,
    limits: dict[str, Any],
    frozen: float | None,
    tries: int,
    estimate: int,
    start: Any,
    out: Any,
) -> None:
    """One worker process: acquire `tries` times, report (ok, tokens) pairs."""
    client = redis_lib.Redis.from_url(url)
    clock = None if frozen is None else (lambda: frozen)
    limiter = RateLimiter(client, link, clock=clock, **limits)
    start.wait(timeout=60)
    results = []
    for _ in range(tries):
        got = limiter.acquire(estimate)
        results.append((got.ok, got.tokens, got.wait))
    out.put(results)
    client.close()


def _race(
    url: str, link: str, limits: dict[str, Any], *, frozen: float | None, tries: int, estimate: int
) -> list[tuple[bool, int, float]]:
    start = _ctx.Barrier(PROCESSES)
    out = _ctx.Queue()
    procs = [
        _ctx.Process(target=_hammer, args=(url, link, limits, frozen, tries, estimate, start, out))
        for _ in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    results: list[tuple[bool, int, float]] = []
    try:
        for _ in procs:
            results.extend(out.get(timeout=120))
    except queue.Empty:
        pytest.fail("a racing process did not report within 120 s")
    finally:
        for proc in procs:
            proc.join(timeout=30)
    assert [proc.exitcode for proc in procs] == [0] * PROCESSES
    assert len(results) == PROCESSES * tries
    return results


@pytest.fixture
def client(redis_url: str) -> Iterator[redis_lib.Redis]:
    conn = redis_lib.Redis.from_url(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def link(client: redis_lib.Redis) -> Iterator[str]:
    name = f"test:{uuid.uuid4().hex}"
    yield name
    client.delete(keys.rate_bucket(name))


def _server_now(client: redis_lib.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1e6


def test_processes_grant_exactly_the_capacity(redis_url, client, link):
    """Frozen time: no refill, so exactly the burst is granted, never more."""
    limits = {"rpm": 100, "tpm": 1_000_000}
    results = _race(redis_url, link, limits, frozen=T0, tries=60, estimate=10)
    granted = [r for r in results if r[0]]
    assert len(granted) == 100
    assert all(wait > 0 for ok, _, wait in results if not ok)
    levels = RateLimiter(client, link, clock=lambda: T0, **limits).levels()
    assert levels.requests == pytest.approx(0.0)
    assert levels.tokens == pytest.approx(1_000_000 - 100 * 10)


def test_processes_never_over_grant_tokens(redis_url, client, link):
    """Tokens bind: what was granted plus what remains is exactly the capacity."""
    limits = {"rpm": 10_000, "tpm": 5_000}
    results = _race(redis_url, link, limits, frozen=T0, tries=50, estimate=70)
    granted = sum(tokens for ok, tokens, _ in results if ok)
    assert granted == 70 * (5_000 // 70)
    levels = RateLimiter(client, link, clock=lambda: T0, **limits).levels()
    assert levels.tokens is not None
    assert 0 <= levels.tokens < 70
    assert granted + levels.tokens == pytest.approx(5_000)


def test_processes_on_the_redis_clock_stay_within_rate(redis_url, client, link):
    """Real time from Redis TIME: grants <= burst + rate * elapsed, for all processes."""
    limits = {"rpm": 6_000, "tpm": None, "burst_requests": 40}  # 100 per second
    before = _server_now(client)
    results = _race(redis_url, link, limits, frozen=None, tries=200, estimate=0)
    elapsed = _server_now(client) - before
    granted = sum(1 for ok, _, _ in results if ok)
    assert granted >= 40
    assert granted <= 40 + 100 * elapsed + 1
    # Refusals name a wait of at most one request's refill time.
    waits = [wait for ok, _, wait in results if not ok]
    assert waits
    assert all(0 < wait <= 0.01 + 1e-6 for wait in waits)
    assert client.pttl(keys.rate_bucket(link)) > 0
