"""One conversation job end to end: real Redis, a real Celery worker, the sandbox over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from celery.result import AsyncResult

from runq.errors import InvalidJobError
from runq.producers.client.sync import Client
from runq.runs import keys
from runq.worker.celery_app import make_app
from runq.worker.launcher import SandboxProcess, Stack
from tests.conftest import imported_modules

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _stats(sandbox: SandboxProcess) -> dict:
    with urllib.request.urlopen(sandbox.base_url.removesuffix("/v1") + "/sandbox/stats") as resp:
        return json.loads(resp.read())


def test_a_job_succeeds_with_output_usage_and_timings(client: Client, sandbox) -> None:
    handle = client.submit("hello from the skeleton test")
    result = handle.result(timeout=60)
    assert result["status"] == "succeeded"
    assert "hello from the skeleton test" in result["output_text"]
    assert result["usage"]["total_tokens"] > 0
    timings = result["timings"]
    names = ("queued_at", "started_at", "run_created_at", "run_completed_at", "finished_at")
    assert all(timings[name].endswith("Z") for name in names)  # ISO 8601, UTC
    moments = [datetime.fromisoformat(timings[name]) for name in names]
    assert moments == sorted(moments) and {m.tzinfo for m in moments} == {UTC}
    assert 0 <= timings["queue_s"] <= timings["total_s"] and timings["run_s"] > 0
    total = (moments[-1] - moments[0]).total_seconds()
    assert timings["total_s"] == pytest.approx(total, abs=2e-3)
    assert result["backend_ids"]["response_id"].startswith("resp")
    assert handle.status() == "succeeded"
    # The job id went to the backend in metadata: exactly one response for this job.
    assert _stats(sandbox)["responses_created_by_job"][handle.id] == 1


def test_a_background_run_is_polled_once_when_the_server_says_when_it_ends(
    client: Client,
) -> None:
    """`openai-poll-after-ms` on the create response schedules the first poll.

    The run takes 800 ms. Without the hint the first poll comes after 0.25 s, finds the
    run in progress and polls again; with it, one poll lands just after the end.
    """
    handle = client.submit("poll me once", instructions="sandbox_latency_ms: 800")
    assert handle.result(timeout=60)["status"] == "succeeded"
    assert handle.job().polls == 1


def test_result_backend_holds_the_result_under_the_job_id(client: Client) -> None:
    handle = client.submit("celery result backend")
    expected = handle.result(timeout=60)
    app = make_app(client.redis_url)
    got = AsyncResult(handle.id, app=app).get(timeout=30)
    assert got["job_id"] == handle.id
    assert got["output_text"] == expected["output_text"]


def test_a_result_waited_for_before_the_job_ends_arrives_as_celery_writes_it(
    client: Client,
) -> None:
    # The worker writes the result entry itself (`CeleryScheduler.publish_result`): the
    # PUBLISH wakes a `get()` that subscribed while the job ran, and the entry has the
    # shape and TTL Celery's own backend gives a task's result.
    handle = client.submit("celery result backend, waited for")
    app = make_app(client.redis_url)
    got = AsyncResult(handle.id, app=app).get(timeout=60)
    assert got["job_id"] == handle.id
    assert got["status"] == "succeeded"
    key = app.backend.get_key_for_task(handle.id)
    meta = app.backend.decode(client.redis.get(key))
    assert meta["status"] == "SUCCESS"
    assert meta["task_id"] == handle.id
    assert meta["result"]["job_id"] == handle.id
    assert meta["date_done"] and meta["traceback"] is None
    assert 0 < client.redis.ttl(key) <= app.conf.result_expires


def test_submit_and_cancel_subscribe_to_no_result_channel(client: Client) -> None:
    # runq's tasks store no result; a producer that let Celery subscribe to each task's
    # result channel paid a SUBSCRIBE and an UNSUBSCRIBE per send, on a pub/sub connection.
    def subscribes() -> int:
        return int(client.redis.info("commandstats").get("cmdstat_subscribe", {}).get("calls", 0))

    before = subscribes()
    handles = [client.submit(f"no result channel {n}") for n in range(3)]
    handles[0].cancel()
    assert subscribes() == before
    assert handles[0].result(timeout=60)["status"] in {"cancelled", "succeeded"}
    assert all(h.result(timeout=60)["job_id"] == h.id for h in handles)


def test_events_end_with_a_final_event(client: Client) -> None:
    handle = client.submit("events please")
    types = [event.type for event in handle.events(timeout=60)]
    assert types[0] == "job.status"
    assert "run.created" in types
    assert types[-1] == "job.final"


def test_idempotency_key_makes_a_double_submit_one_job(client: Client) -> None:
    first = client.submit("only once", idempotency_key="skeleton-idem-1")
    second = client.submit("only once", idempotency_key="skeleton-idem-1")
    assert first.id == second.id
    assert first.result(timeout=60)["status"] == "succeeded"


def _cli(
    *args: str, env: dict[str, str], cwd: Path, python: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *python, "-m", "runq.producers.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def test_cli_submit_wait_json(stack: Stack, tmp_path: Path) -> None:
    env = {**os.environ, "REDIS_URL": str(stack.redis_url), "PYTHONPATH": str(ROOT)}
    done = _cli("submit", "hello", "--wait", "--json", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    assert {"job_id", "output_text", "usage", "timings"} <= set(result)
    # Looking at a job reads its record over the quick reads: redis-py is not imported.
    looks = ("-X", "importtime")
    status = _cli("status", result["job_id"], env=env, cwd=tmp_path, python=looks)
    assert status.stdout.splitlines()[0] == "succeeded"  # then its age and step
    again = _cli("result", result["job_id"], "--json", env=env, cwd=tmp_path, python=looks)
    assert json.loads(again.stdout)["output_text"] == result["output_text"]
    for done_looking in (status, again):
        assert "redis" not in imported_modules(done_looking.stderr)
    missing = _cli("status", "job_nope", env=env, cwd=tmp_path)
    assert missing.returncode == 2
    assert "no job with id 'job_nope'" in missing.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["submit", ""], "input"),
        (["submit", "hi", "--backend", "telepathy"], "backend"),
        (["submit", "hi", "--deadline", "-5"], "deadline"),
    ],
)
def test_bad_input_is_refused_before_enqueueing(
    stack: Stack, client: Client, tmp_path: Path, args: list[str], named: str
) -> None:
    jobs_before = len(client.redis.keys(keys.job("*")))
    queued_before = client.redis.llen("runs")
    env = {**os.environ, "REDIS_URL": str(stack.redis_url), "PYTHONPATH": str(ROOT)}
    done = _cli(*args, env=env, cwd=tmp_path)
    assert done.returncode == 2
    # Named as the job option (`error: backend: ...`) or, for a value argparse parses
    # itself (a duration), as the flag (`error: argument --deadline: ...`).
    assert f"error: {named}:" in done.stderr or f"error: argument --{named}:" in done.stderr
    assert len(client.redis.keys(keys.job("*"))) == jobs_before
    assert client.redis.llen("runs") == queued_before


def test_python_api_refuses_bad_input(client: Client) -> None:
    with pytest.raises(InvalidJobError) as info:
        client.submit("hi", backend="telepathy")
    assert info.value.option == "backend"


def _start_worker(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A worker with only `env` of runq's and OpenAI's settings; it must stop by itself."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "RUNQ_"))}
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", "runq.worker", "worker", "-Q", "runs,tools"],
        capture_output=True,
        text=True,
        env={**base, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        timeout=60,
    )


def test_worker_without_a_backend_refuses_to_start(redis_url: str, tmp_path: Path) -> None:
    done = _start_worker(tmp_path, REDIS_URL=redis_url)
    assert done.returncode != 0
    assert "OPENAI_API_KEY" in done.stderr and "OPENAI_BASE_URL" in done.stderr


def test_worker_whose_tools_do_not_import_refuses_to_start(
    redis_url: str, sandbox, tmp_path: Path
) -> None:
    # Celery swallows an exception raised in a signal handler: without the refusal the
    # worker came up without its tools and failed every job that called one.
    done = _start_worker(tmp_path, REDIS_URL=redis_url, OPENAI_BASE_URL=sandbox.base_url,
                         RUNQ_TOOL_MODULES="examples.tools,no_such_tools_module")  # fmt: skip
    assert done.returncode == 2
    assert "RUNQ_TOOL_MODULES" in done.stderr and "no_such_tools_module" in done.stderr


def test_waiting_does_not_hold_a_slot(tmp_path: Path) -> None:
    """Concurrency 1 and 3 s of backend latency: five runs are in progress at once.

    Its own Redis: a worker of another stack must not take these jobs.
    """
    with Stack(
        home=tmp_path, sandbox_latency_ms=3000, concurrency=1, worker_log=tmp_path / "worker.log"
    ) as stack:
        assert stack.sandbox is not None and stack.redis_url is not None
        client = Client(stack.redis_url)
        handles = [client.submit(f"slot test {i}") for i in range(5)]
        results = [h.result(timeout=60) for h in handles]
        assert [r["status"] for r in results] == ["succeeded"] * 5
        assert _stats(stack.sandbox)["peak_in_flight_responses"] >= 5
