"""runs.metrics_buffer: increments summed in-process, flushed in one pipeline per interval.

The hash a buffered `Metrics` leaves is the hash an unbuffered one leaves (the collector
and every reader are unchanged); only the number of commands differs. A failed flush
keeps its sums, within a bound; a forked child starts empty; a clean exit flushes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from typing import Any

import fakeredis
import pytest
import redis
from structlog.testing import capture_logs

from runq.config.settings import load_settings
from runq.errors import ConfigurationError
from runq.runs import keys
from runq.runs.metrics import Metrics
from runq.runs.metrics_buffer import MetricsBuffer, flush_all
from tests.conftest import wait_for

PRICES = {"m-cheap": (1.0, 2.0)}
LONG = 3600.0  # an interval no test waits for: only an explicit flush sends


class CountingRedis(fakeredis.FakeRedis):
    """Counts the commands its pipelines send (what MONITOR would show)."""

    sent: int = 0

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction=transaction, shard_hint=shard_hint)
        owner, execute = self, pipe.execute

        def counted(*args: Any, **kwargs: Any) -> Any:
            owner.sent += len(pipe.command_stack)
            return execute(*args, **kwargs)

        pipe.execute = counted  # type: ignore[method-assign]
        return pipe


def finish_jobs(m: Metrics, n: int) -> None:
    for i in range(n):
        m.job_finished(status="succeeded", source="responses:m-cheap", model="m-cheap",
                       latency_s=1.5, input_tokens=100 + i, output_tokens=10,
                       run_wait_s=1.0)  # fmt: skip
        m.tool_call(name="calculator", seconds=0.02, error=None)
        m.retry(link="responses:m-cheap", code="rate_limited")
        m.ratelimit_wait(link="responses:m-cheap", seconds=0.25)


def stored(r: redis.Redis) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in r.hgetall(keys.metrics()).items()}


@pytest.fixture
def buffered() -> Any:
    r = CountingRedis()
    m = Metrics(r, prices=PRICES, flush_interval=LONG)
    yield r, m
    m.close()


def test_a_buffered_hash_equals_the_unbuffered_one_in_one_command_per_field(
    buffered: tuple[CountingRedis, Metrics],
) -> None:
    r, m = buffered
    direct_r = CountingRedis()
    finish_jobs(Metrics(direct_r, prices=PRICES), 40)
    finish_jobs(m, 40)
    assert r.sent == 0 and not r.exists(keys.metrics())  # nothing sent yet
    assert m.flush() is True
    got, want = stored(r), stored(direct_r)
    assert got.keys() == want.keys()
    assert got == pytest.approx(want)
    assert r.sent == len(want) < direct_r.sent / 30  # 40 jobs: one command per field
    assert m.buffer is not None and m.buffer.pending() == 0
    assert m.flush() is True and r.sent == len(want)  # nothing left: nothing sent


def test_the_flush_thread_sends_within_the_interval() -> None:
    r = fakeredis.FakeRedis()
    m = Metrics(r, prices=PRICES, flush_interval=0.05)
    try:
        m.retry(link="l", code="c")
        wait_for(lambda: r.hget(keys.metrics(), 'retries{"code":"c","link":"l"}'),
                 timeout=5, what="the flush thread")  # fmt: skip
        m.retry(link="l", code="c")
        wait_for(lambda: r.hget(keys.metrics(), 'retries{"code":"c","link":"l"}') == b"2",
                 timeout=5, what="the second flush")  # fmt: skip
    finally:
        m.close()


def test_zero_interval_sends_each_record_and_rides_the_callers_pipeline() -> None:
    r = CountingRedis()
    m = Metrics(r, prices=PRICES, flush_interval=0)
    assert m.buffer is None
    m.retry(link="l", code="c")
    assert r.sent == 1
    pipe = r.pipeline(transaction=True)
    m.tool_call(name="calculator", seconds=0.02, error=None, pipe=pipe)
    assert len(pipe.command_stack) == 2  # queued, not sent: the caller executes
    pipe.execute()
    assert stored(r)['tool_latency_seconds_sum{"tool":"calculator"}'] == pytest.approx(0.02)


def test_buffered_tool_calls_leave_the_callers_pipeline_alone(
    buffered: tuple[CountingRedis, Metrics],
) -> None:
    r, m = buffered
    pipe = r.pipeline(transaction=True)
    m.tool_call(name="calculator", seconds=0.02, error="timeout", pipe=pipe)
    assert len(pipe.command_stack) == 0
    m.flush()
    assert stored(r)['tool_errors{"error":"timeout","tool":"calculator"}'] == 1


def test_snapshot_reads_this_process_figures_and_reset_forgets_the_buffer(
    buffered: tuple[CountingRedis, Metrics],
) -> None:
    r, m = buffered
    m.retry(link="l", code="c")
    assert m.snapshot()[("retries", (("code", "c"), ("link", "l")))] == 1
    m.retry(link="l", code="c")
    m.reset()
    m.flush()
    assert not r.exists(keys.metrics())


def test_a_failed_flush_keeps_its_sums_for_the_next_one() -> None:
    server = fakeredis.FakeServer()
    r = fakeredis.FakeRedis(server=server)
    m = Metrics(r, prices=PRICES, flush_interval=LONG)
    try:
        m.retry(link="l", code="c")
        server.connected = False
        with capture_logs() as logs:
            assert m.flush() is False  # no raise
            m.retry(link="l", code="c")  # recording goes on while Redis is down
        assert [e["event"] for e in logs] == ["metrics.flush_failed"]
        server.connected = True
        assert m.flush() is True
        assert stored(r) == {'retries{"code":"c","link":"l"}': 2}
    finally:
        m.close()


def test_the_buffer_is_bounded_and_says_what_it_dropped() -> None:
    server = fakeredis.FakeServer()
    server.connected = False  # a long outage: nothing leaves
    r = fakeredis.FakeRedis(server=server)
    buffer = MetricsBuffer(r, keys.metrics(), LONG, max_fields=3)
    try:
        buffer.add([("a", 1), ("b", 1), ("c", 1), ("d", 1)], [("e", 0.5)])
        buffer.add([("a", 1)], [])  # a known field still adds up
        assert buffer.pending() == 3
        with capture_logs() as logs:
            buffer.flush()
        full = [e for e in logs if e["event"] == "metrics.buffer_full"]
        assert full and full[0]["dropped_increments"] == 2 and full[0]["max_fields"] == 3
        assert buffer.pending() == 3  # kept for the next flush
        server.connected = True
        buffer.flush()
        assert stored(r) == {"a": 2, "b": 1, "c": 1}
    finally:
        buffer.close()


def test_many_threads_record_while_the_thread_flushes() -> None:
    """A worker's 64 threads record into one buffer while it flushes: nothing is lost."""
    r = fakeredis.FakeRedis()
    m = Metrics(r, prices=PRICES, flush_interval=0.01)
    threads = [
        threading.Thread(target=lambda: [m.retry(link="l", code="c") for _ in range(300)])
        for _ in range(64)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    m.close()
    assert stored(r) == {'retries{"code":"c","link":"l"}': 64 * 300}


def test_close_flushes_and_flush_all_covers_every_buffer() -> None:
    r = fakeredis.FakeRedis()
    a = Metrics(r, prices=PRICES, flush_interval=LONG)
    b = Metrics(r, prices=PRICES, flush_interval=LONG)
    a.retry(link="a", code="c")
    b.retry(link="b", code="c")
    flush_all()
    assert set(stored(r)) == {'retries{"code":"c","link":"a"}', 'retries{"code":"c","link":"b"}'}
    a.retry(link="a", code="c")
    assert a.close() is True
    assert stored(r)['retries{"code":"c","link":"a"}'] == 2
    b.close()


def test_a_forked_child_does_not_send_its_parents_sums(redis_url: str) -> None:
    """A prefork child starts with a copy of the parent's memory: the parent's unflushed
    sums must be sent once (by the parent), and the child's own thread must start."""
    r = redis.Redis.from_url(redis_url)
    r.delete(keys.metrics())
    m = Metrics(r, prices=PRICES, flush_interval=LONG)
    m.retry(link="parent", code="c")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, record its own, flush, leave as billiard does
        code = 1
        try:
            assert m.buffer is not None
            inherited = m.buffer.pending()
            m.retry(link="child", code="c")
            started = m.buffer._thread is not None and m.buffer._thread.is_alive()
            m.close()
            os.write(write, f"{inherited} {started}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    report = os.read(read, 100).decode()
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == "0 True"
    m.close()
    assert stored(r) == {'retries{"code":"c","link":"child"}': 1,
                         'retries{"code":"c","link":"parent"}': 1}  # fmt: skip
    r.delete(keys.metrics())


def test_a_clean_exit_flushes(redis_url: str) -> None:
    """atexit sends what a process summed: a stopping producer or worker loses nothing."""
    r = redis.Redis.from_url(redis_url)
    r.delete(keys.metrics())
    script = textwrap.dedent(f"""
        import redis
        from runq.runs.metrics import Metrics
        m = Metrics(redis.Redis.from_url({redis_url!r}), prices={{}}, flush_interval=3600)
        for _ in range(5):
            m.retry(link="exiting", code="c")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert stored(r) == {'retries{"code":"c","link":"exiting"}': 5}
    r.delete(keys.metrics())


def test_the_interval_is_a_setting() -> None:
    assert load_settings().metrics_flush_interval == 1.0
    assert load_settings(metrics_flush_interval="0").metrics_flush_interval == 0
    with pytest.raises(ConfigurationError, match="METRICS_FLUSH_INTERVAL"):
        load_settings(metrics_flush_interval="-1")
    with pytest.raises(ConfigurationError, match="METRICS_FLUSH_INTERVAL"):
        Metrics(fakeredis.FakeRedis(), prices={}, flush_interval=-1)
