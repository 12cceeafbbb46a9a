"""Operations, for real: Redis, the sandbox over HTTP, Celery workers as processes.

- `runq metrics` (a subprocess) sees every job exactly once, whichever prefork child
  ran it, with the tokens the results report;
- the worker log is JSON lines, job lines carry `job_id`, and a planted API key never
  shows up;
- three workers on separate queues (two `runs`, one `tools`) share one batch: every job
  succeeds, both `runs` workers take work, tool calls run only on the `tools` worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runq.config.settings import load_settings
from runq.producers.client.sync import Client, JobHandle
from runq.runs.metrics import DEFAULT_PRICES
from runq.worker.launcher import Stack, WorkerProcess, free_port
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

PLANTED_KEY = "sk-planted-secret-123456789"
MODEL = "gpt-5-mini"
CALCULATOR_SCRIPT = json.dumps([[{"name": "calculator", "arguments": {"expression": "6*7"}}]])
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


# -- helpers -----------------------------------------------------------------------------
def tool_job(client: Client, text: str = "What is six times seven?") -> JobHandle:
    """A job whose model calls `calculator` once (the sandbox's documented script channel)."""
    return client.submit(
        text, tools=["calculator"], instructions=f"sandbox_script: {CALCULATOR_SCRIPT}"
    )


def results(handles: list[JobHandle], timeout: float = 60) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda h: h.result(timeout=timeout), handles))


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, lb), v in samples.items() if n == name and want <= set(lb))


def log_records(path: Path) -> list[dict[str, Any]]:
    """Every line of a worker log, parsed; a line that is not JSON fails the test."""
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"{path.name} line {number} is not JSON: {line!r}")
    return records


def json_records(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON lines of a log, skipping others (`log_records` is the strict reader)."""
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


def tasks_run(path: Path) -> dict[str, set[str]]:
    """task name -> ids of the jobs whose tasks of that name logged in this worker's log."""
    seen: dict[str, set[str]] = defaultdict(set)
    for record in json_records(path):
        if record.get("task_name") and record.get("job_id"):
            seen[record["task_name"]].add(record["job_id"])
    return seen


# -- one stack for metrics and logs ------------------------------------------------------
@pytest.fixture(scope="module")
def ops_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("ops")
    with Stack(
        home=home,
        sandbox_latency_ms=100,
        worker_log=home / "worker.log",
        worker_env={"OPENAI_API_KEY": PLANTED_KEY, "RUNQ_LOG_FORMAT": "json"},
    ) as running:
        yield running


@pytest.fixture(scope="module")
def ops_client(ops_stack: Stack) -> Client:
    assert ops_stack.redis_url
    return Client(ops_stack.redis_url, load_settings(redis_url=ops_stack.redis_url))


@pytest.fixture(scope="module")
def metrics_url(ops_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`runq metrics` as its own process, finding Redis through REDIS_URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    out = (tmp_path_factory.mktemp("metrics") / "metrics.log").open("wb")
    env = {**os.environ, "REDIS_URL": str(ops_stack.redis_url)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runq.producers.cli",
            "metrics",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )

    def up() -> bool:
        assert proc.poll() is None, f"runq metrics exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    try:
        wait_for(up, timeout=20, what="runq metrics to serve /metrics")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        out.close()
    assert proc.returncode == 0  # SIGTERM is a clean stop


def test_metrics_count_every_job_exactly_once(ops_client: Client, metrics_url: str) -> None:
    before = scrape(metrics_url)
    handles = [ops_client.submit(f"Question {i}: what is Redis?") for i in range(4)]
    handles.append(tool_job(ops_client))
    done = results(handles)
    assert [r["status"] for r in done] == ["succeeded"] * 5
    n = len(handles)

    def jobs_delta(samples: Samples) -> float:
        return total(samples, "runq_jobs_total") - total(before, "runq_jobs_total")

    def flushed(samples: Samples) -> bool:
        """Each worker process flushes its sums once a second (RUNQ_METRICS_FLUSH_INTERVAL),
        the tool call's maybe from another process than the job's end."""
        tool_calls = total(samples, "runq_tool_latency_seconds_count", tool="calculator")
        before_calls = total(before, "runq_tool_latency_seconds_count", tool="calculator")
        return jobs_delta(samples) >= n and tool_calls - before_calls >= 1

    wait_for(
        lambda: flushed(scrape(metrics_url)),
        timeout=15,
        what="runq_jobs_total and the tool call to count the finished jobs",
    )
    after = scrape(metrics_url)
    assert jobs_delta(after) == n
    ok = {"status": "succeeded", "source": f"responses:{MODEL}"}
    assert total(after, "runq_jobs_total", **ok) - total(before, "runq_jobs_total", **ok) == n

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("runq_job_latency_seconds_count") == n
    assert delta("runq_job_latency_seconds_sum") > 0
    assert delta("runq_run_wait_seconds_count") >= n
    used_in = sum(r["usage"]["input_tokens"] for r in done)
    used_out = sum(r["usage"]["output_tokens"] for r in done)
    assert used_in > 0 and used_out > 0
    assert delta("runq_tokens_total", model=MODEL, direction="input") == used_in
    assert delta("runq_tokens_total", model=MODEL, direction="output") == used_out
    price_in, price_out = DEFAULT_PRICES[MODEL]
    expected_cost = (used_in * price_in + used_out * price_out) / 1_000_000
    assert delta("runq_cost_usd_total", model=MODEL) == pytest.approx(expected_cost)
    assert delta("runq_tool_latency_seconds_count", tool="calculator") == 1
    assert delta("runq_tool_errors_total") == 0
    assert ("runq_queue_length", (("queue", "runs"),)) in after
    # Every job ended, so no woken step is left waiting for a runner.
    assert after[("runq_wake_queue_length", ())] == 0


def test_worker_log_is_json_with_job_ids_and_no_secret(
    ops_client: Client, ops_stack: Stack
) -> None:
    handles = [ops_client.submit("Log me, please"), tool_job(ops_client, "Log my tool call")]
    assert {r["status"] for r in results(handles)} == {"succeeded"}
    log_path = ops_stack.worker_log
    assert log_path is not None
    ids = {h.id for h in handles}

    def finished() -> set[str]:
        return {r["job_id"] for r in json_records(log_path) if r.get("event") == "job.finished"}

    # The result is committed before the worker writes its `job.finished` line.
    wait_for(lambda: ids <= finished(), timeout=10, what="job.finished lines of both jobs")

    text = log_path.read_text()
    assert PLANTED_KEY not in text
    assert "sk-planted" not in text
    records = log_records(log_path)
    assert records, "the worker wrote no log lines"
    for record in records:
        assert {"event", "level", "timestamp"} <= set(record), record
    job_lines = [r for r in records if str(r["event"]).startswith("job.")]
    assert job_lines and all(r.get("job_id") for r in job_lines), "job.* lines need a job_id"
    task_lines = [r for r in records if r.get("task_name")]
    assert task_lines and all(r.get("job_id") and r.get("task_id") for r in task_lines)
    tool_lines = [r for r in task_lines if r["task_name"] == "runq.tools.call"]
    assert {r["job_id"] for r in tool_lines} >= {handles[1].id}


# -- scale-out ---------------------------------------------------------------------------
def test_workers_on_separate_queues_share_a_batch(tmp_path: Path) -> None:
    with Stack(home=tmp_path, sandbox_latency_ms=100, workers=0) as base:
        assert base.redis_url and base.base_url
        env = {"RUNQ_LOG_FORMAT": "json"}
        tag = os.getpid()
        plan = [("runs-a", "runs"), ("runs-b", "runs"), ("tools-a", "tools")]
        workers = {
            name: WorkerProcess(
                base.redis_url,
                base.base_url,
                queues=queues,
                concurrency=2,
                name=f"{name}-{tag}@%h",
                env=env,
                log_path=tmp_path / f"{name}.log",
            )
            for name, queues in plan
        }
        try:
            for proc in workers.values():
                proc.start()
            for name, proc in workers.items():
                assert proc.log_path is not None
                path = proc.log_path
                wait_for(
                    lambda path=path: path.exists() and "ready." in path.read_text(),
                    timeout=30,
                    what=f"worker {name} to be ready",
                )

            client = Client(base.redis_url, load_settings(redis_url=base.redis_url))
            plain = [client.submit(f"Batch question {i}") for i in range(24)]
            tools = [tool_job(client, f"Batch tool question {i}") for i in range(6)]
            done = results(plain + tools)
            assert [r["status"] for r in done] == ["succeeded"] * 30
            for result in done[24:]:
                (call,) = result["tool_calls"]
                assert call["name"] == "calculator" and json.loads(call["output"])["result"] == 42
            all_ids = {h.id for h in plain + tools}
            tool_ids = {h.id for h in tools}

            def seen(name: str) -> dict[str, set[str]]:
                path = workers[name].log_path
                assert path is not None
                return tasks_run(path)

            wait_for(
                lambda: (
                    all_ids <= seen("runs-a")["runq.jobs.poll"] | seen("runs-b")["runq.jobs.poll"]
                ),
                timeout=10,
                what="the runs workers' logs to show every job",
            )
            runs_a, runs_b, tools_a = seen("runs-a"), seen("runs-b"), seen("tools-a")
        finally:
            for proc in workers.values():  # warm shutdowns in parallel, then wait for each
                if proc.proc is not None and proc.proc.poll() is None:
                    proc.proc.terminate()
            for proc in workers.values():
                proc.stop()

    started_a, started_b = runs_a["runq.jobs.start"], runs_b["runq.jobs.start"]
    assert started_a and started_b, "both runs workers must take jobs"
    assert started_a | started_b == all_ids
    assert not started_a & started_b, "each start runs once"
    assert "runq.tools.call" not in runs_a and "runq.tools.call" not in runs_b
    assert tools_a["runq.tools.call"] == tool_ids
    assert not any(name.startswith("runq.jobs.") for name in tools_a)
