"""Tool rounds on every protocol, continuity, cancellation and bad tool calls — for real."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import pytest
import structlog

from runq.errors import InvalidJobError
from runq.producers.client.sync import Client
from runq.worker.launcher import Stack
from tests.conftest import wait_for
from tests.integration.conftest import client_for, stack_on, worker_log

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(redis_url: str, sandbox, tmp_path_factory) -> Iterator[Stack]:
    """Production's shape: a worker for the `runs` queue and one for `tools`."""
    home = tmp_path_factory.mktemp("orchestration")
    with stack_on(redis_url, sandbox, home, tool_workers=1) as running:
        yield running


TWO_THEN_ONE = json.dumps(
    [
        [
            {"name": "calculator", "arguments": {"expression": "6*7"}},
            {
                "name": "convert_units",
                "arguments": {"value": 10, "from_unit": "km", "to_unit": "mi"},
            },
        ],
        [{"name": "calculator", "arguments": {"expression": "42+1"}}],
    ]
)


@pytest.mark.parametrize("backend", ["responses", "assistants", "chat"])
def test_two_parallel_calls_then_one(client: Client, stack, backend: str) -> None:
    handle = client.submit(
        "Use the tools, please.",
        backend=backend,
        tools=["calculator", "convert_units"],
        metadata={"sandbox_script": TWO_THEN_ONE},
    )
    result = handle.result(timeout=90)
    assert result["status"] == "succeeded", result["error"]
    calls = result["tool_calls"]
    assert [(c["round"], c["name"]) for c in calls] == [
        (1, "calculator"),
        (1, "convert_units"),
        (2, "calculator"),
    ]
    assert json.loads(calls[0]["output"])["result"] == 42
    assert json.loads(calls[2]["output"])["result"] == 43
    assert calls[1]["error"] is None and "6.21" in calls[1]["output"]
    assert "43" in result["output_text"]  # the answer uses the tool outputs

    # Each call ran as its own task on the tools queue. The last call of a round runs
    # the submit itself, so its task may still be finishing when the result is out.
    def tool_tasks() -> list[str]:
        return [
            line
            for line in worker_log(stack).splitlines()
            if handle.id in line and "runq.tools.call" in line and "succeeded in" in line
        ]

    wait_for(lambda: len(tool_tasks()) >= 3, timeout=20, what="the three tool tasks")
    assert len(tool_tasks()) == 3


@pytest.mark.parametrize(
    ("script", "code"),
    [
        ([[{"name": "teleport", "arguments": {}}]], "unknown_tool"),
        ([[{"name": "calculator", "arguments": {"expression": 7}}]], "invalid_arguments"),
        ([[{"name": "calculator", "arguments": {"expression": "1/0"}}]], "tool_raised"),
    ],
)
def test_bad_tool_calls_become_error_outputs(client: Client, script, code: str) -> None:
    handle = client.submit(
        "Try the tool.", tools=["calculator"], metadata={"sandbox_script": json.dumps(script)}
    )
    result = handle.result(timeout=60)
    assert result["status"] == "succeeded"
    assert result["tool_calls"][0]["error"] == code
    assert code in result["tool_calls"][0]["output"]
    # The worker kept running: another job still goes through.
    assert client.submit("still alive?").result(timeout=60)["status"] == "succeeded"


def test_unknown_tool_name_is_refused_before_anything_is_enqueued(client: Client, stack) -> None:
    # The producer checks against the tools the workers published at start-up.
    wait_for(lambda: client_for(stack).known_tools(), timeout=30, what="the tool catalog")
    fresh = client_for(stack)
    with pytest.raises(InvalidJobError, match="no_such_tool") as info:
        fresh.submit("hi", tools=["no_such_tool"])
    assert info.value.option == "tools"


def test_a_job_naming_a_tool_no_worker_has_fails_alone(
    client: Client, stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A producer that could not check (no catalog yet, or workers changed since) still
    gets a clear failure from the worker, and only that job fails."""
    unchecked = client_for(stack)
    monkeypatch.setattr(unchecked, "known_tools", lambda: None)
    bad = unchecked.submit("hi", tools=["no_such_tool"])
    good = unchecked.submit("hello")
    result = bad.result(timeout=60)
    assert result["status"] == "failed"
    assert "no_such_tool" in result["error"]["message"]
    assert good.result(timeout=60)["status"] == "succeeded"


@pytest.mark.parametrize("backend", ["responses", "assistants"])
def test_a_continuation_sees_the_earlier_turn(client: Client, backend: str) -> None:
    first = client.submit("My name is Ada Lovelace.", backend=backend)
    second = client.submit("What did I say before?", backend=backend, continue_job=first.id)
    first_result = first.result(timeout=60)
    result = second.result(timeout=60)
    assert result["status"] == "succeeded", result["error"]
    assert "Ada Lovelace" in result["output_text"]
    if backend == "assistants":
        assert result["backend_ids"]["thread_id"] == first_result["backend_ids"]["thread_id"]


def test_two_jobs_on_one_thread_take_turns(client: Client) -> None:
    first = client.submit("Turn one.", backend="assistants")
    thread = first.result(timeout=60)["backend_ids"]["thread_id"]
    a = client.submit("Turn two.", backend="assistants", thread_id=thread)
    b = client.submit("Turn three.", backend="assistants", thread_id=thread)
    results = [a.result(timeout=60), b.result(timeout=60)]
    assert [r["status"] for r in results] == ["succeeded", "succeeded"]


@pytest.mark.parametrize(
    ("backend", "cancelled_at_backend"),
    [("responses", "response_cancel_requests_by_job"), ("assistants", "runs_cancelled_by_job")],
)
def test_cancel_during_a_tool_round(
    client: Client, sandbox, backend: str, cancelled_at_backend: str
) -> None:
    script = json.dumps([[{"name": "wait_a_while", "arguments": {"seconds": 8}}]])
    handle = client.submit("slow tools", backend=backend, tools=["wait_a_while"],
                           metadata={"sandbox_script": script})  # fmt: skip
    wait_for(lambda: handle.status() == "waiting_tools", timeout=30, what="the tool round")
    asked = time.monotonic()
    handle.cancel()
    result = handle.result(timeout=10)
    took = time.monotonic() - asked
    assert result["status"] == "cancelled"
    # The tool still has seconds to run: only a cancel that does not wait for it is this fast.
    assert took < 2.0, f"the cancel took {took:.2f}s (the issue allows 2 s)"
    url = sandbox.base_url.removesuffix("/v1") + "/sandbox/stats"
    stats = json.loads(urllib.request.urlopen(url).read())
    assert stats[cancelled_at_backend].get(handle.id, 0) >= 1


def test_log_context_travels_to_every_task_of_a_job(client: Client, stack) -> None:
    script = json.dumps([[{"name": "calculator", "arguments": {"expression": "1+2"}}]])
    handle = client.submit("context please", tools=["calculator"],
                           metadata={"sandbox_script": script})  # fmt: skip
    result = handle.result(timeout=60)
    assert result["status"] == "succeeded"
    # The run exists from the first poll on; the poll that sees it end also publishes it.
    # The round's submit runs inside the tool task that completed it, in its context.
    with_run = ("runq.tools.call", "runq.jobs.poll")
    by_task = wait_for(
        lambda: (
            (r := _task_records(stack, handle.id))
            and {"runq.jobs.start", *with_run} <= set(r)
            and r
        ),
        timeout=20,
        what="every task's outcome line",
    )
    for name in with_run:
        record = by_task[name]
        assert record["link"] == "responses:gpt-5-mini"
        assert record["run_id"].startswith("resp")
        assert record["attempt"] == 0
        assert record["task_id"]


def test_a_producers_log_context_travels_with_its_job(client: Client, stack) -> None:
    # A web app binds its request id; the job's first task logs it (runq_context header).
    structlog.contextvars.bind_contextvars(request_id="req-42")
    try:
        handle = client.submit("context from the producer")
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    assert handle.result(timeout=60)["status"] == "succeeded"
    start = wait_for(lambda: _task_records(stack, handle.id).get("runq.jobs.start"),
                     timeout=20, what="the start task's log line")  # fmt: skip
    assert start["request_id"] == "req-42"


def _task_records(stack, job_id: str) -> dict[str, dict]:
    """The worker's task-outcome log lines of one job, by task name."""
    records = {}
    for line in worker_log(stack).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("job_id") == job_id and record.get("logger") == "celery.app.trace":
            records[record["task_name"]] = record
    return records
