"""Producers wait through a Redis restart (runq.producers.client.reconnect).

A private Redis with an append-only file (so the job survives) is stopped and started
again on the same port while one producer waits on `result()` and another follows
`events()`: neither raises, and both get the job's end once it is written after the
restart. A Redis that stays down past the wait's timeout gives one
`RedisUnavailableError` naming the URL without its password. No worker runs: the
test writes the job's final event itself, as a worker would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from runq.config.settings import load_settings
from runq.errors import RedisUnavailableError
from runq.producers.client.sync import Client
from runq.runs.events import EventLog
from runq.worker.launcher import EmbeddedRedis
from tests.conftest import wait_for


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path, appendonly=True).start()
    try:
        yield server
    finally:
        server.stop()


def _client(url: str) -> Client:
    return Client(url, load_settings(redis_url=url))


def test_result_and_events_survive_a_restart(private_redis: EmbeddedRedis) -> None:
    client = _client(private_redis.url)
    handle = client.submit("wait for me", job_id="restart-1")
    got: dict[str, Any] = {}
    errors: list[BaseException] = []

    def wait_result() -> None:
        try:
            got["result"] = handle.result(timeout=30)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    def follow() -> None:
        try:
            follower = _client(private_redis.url).get_job(handle.id)
            got["events"] = [event.type for event in follower.events(timeout=30)]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wait_result), threading.Thread(target=follow)]
    for thread in threads:
        thread.start()
    probe = redis.Redis.from_url(private_redis.url)

    def both_blocked() -> bool:
        return sum(c.get("cmd") == "xread" for c in probe.client_list()) >= 2

    wait_for(both_blocked, timeout=10, what="both producers waiting in XREAD")
    probe.close()
    private_redis.stop()
    private_redis.start()
    result = {"job_id": handle.id, "status": "succeeded", "output_text": "done"}
    final = {"type": "job.final", "status": "succeeded", "result": result}
    EventLog(redis.Redis.from_url(private_redis.url)).append(handle.id, final)
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert got["result"]["output_text"] == "done"
    assert got["events"][0] == "job.status" and got["events"][-1] == "job.final"


def test_a_redis_that_stays_down_gives_one_clear_error(private_redis: EmbeddedRedis) -> None:
    client = _client(private_redis.url)
    handle = client.submit("nobody answers", job_id="restart-2")
    private_redis.stop()
    began = time.monotonic()
    with pytest.raises(RedisUnavailableError) as down:
        handle.result(timeout=2)
    assert time.monotonic() - began < 5
    assert private_redis.password is not None and private_redis.password not in str(down.value)
    assert f"127.0.0.1:{private_redis.port}" in str(down.value)


def test_runq_watch_survives_a_restart(private_redis: EmbeddedRedis, tmp_path: Path) -> None:
    """The CLI's follower is the same wait: `runq watch` keeps going through a restart."""
    import os
    import subprocess
    import sys

    client = _client(private_redis.url)
    handle = client.submit("watch me", job_id="restart-3")
    env = {**os.environ, "REDIS_URL": private_redis.url}
    watch = subprocess.Popen(
        [sys.executable, "-m", "runq.producers.cli", "watch", handle.id],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        probe = redis.Redis.from_url(private_redis.url)
        wait_for(
            lambda: any(c.get("cmd") == "xread" for c in probe.client_list()),
            timeout=20,
            what="runq watch waiting in XREAD",
        )
        probe.close()
        private_redis.stop()
        private_redis.start()
        result = {"job_id": handle.id, "status": "succeeded", "output_text": "watched"}
        final = {"type": "job.final", "status": "succeeded", "result": result}
        EventLog(redis.Redis.from_url(private_redis.url)).append(handle.id, final)
        out, err = watch.communicate(timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0, err
    assert "job.final" in out and "Traceback" not in err


def test_gateway_sse_survives_a_restart(private_redis: EmbeddedRedis, tmp_path: Path) -> None:
    """The gateway's shared stream reader reconnects: an open SSE stream carries the job's
    end written after Redis came back, without an error event or a dropped connection,
    and the gateway answers requests again once Redis is back."""
    import httpx

    from tests.integration.gateway_process import parse_sse, start_gateway, stop

    auth = {"Authorization": "Bearer token-a"}
    proc, base = start_gateway(private_redis.url, tmp_path, tokens="token-a:alice")
    try:
        made = httpx.post(f"{base}/v1/jobs", json={"input": "stream me"}, headers=auth,
                          timeout=10)  # fmt: skip
        assert made.status_code == 201, made.text
        job_id = made.json()["job_id"]
        seen: list[dict[str, Any]] = []
        errors: list[BaseException] = []

        def follow() -> None:
            url = f"{base}/v1/jobs/{job_id}/events"
            try:
                with httpx.stream("GET", url, headers=auth, timeout=60) as resp:
                    assert resp.status_code == 200
                    seen.extend(parse_sse(resp.iter_lines()))
            except BaseException as exc:
                errors.append(exc)

        reader = threading.Thread(target=follow)
        reader.start()
        probe = redis.Redis.from_url(private_redis.url)
        wait_for(
            lambda: any(c.get("cmd") == "xread" for c in probe.client_list()),
            timeout=20,
            what="the gateway's stream reader waiting in XREAD",
        )
        probe.close()
        private_redis.stop()
        private_redis.start()
        result = {"job_id": job_id, "status": "succeeded", "output_text": "streamed"}
        final = {"type": "job.final", "status": "succeeded", "result": result}
        EventLog(redis.Redis.from_url(private_redis.url)).append(job_id, final)
        reader.join(timeout=60)
        assert not reader.is_alive(), "the SSE stream never ended"
        assert not errors, errors
        assert seen and seen[-1]["event"] == "job.final"
        assert seen[-1]["data"]["result"]["output_text"] == "streamed"
        assert "error" not in {event["event"] for event in seen}
        again = httpx.get(f"{base}/v1/jobs/{job_id}", headers=auth, timeout=10)
        assert again.status_code == 200
    finally:
        stop(proc)
