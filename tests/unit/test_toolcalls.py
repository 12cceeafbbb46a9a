"""Tool calls run at most once, and exactly one call completes its round."""

from __future__ import annotations

import hashlib
import json
import threading

import fakeredis

from runq.runs import keys
from runq.runs.events import EventLog
from runq.runs.toolcalls import ToolCall, ToolCalls
from runq.runs.tools import ToolRegistry


def _registry(counter: list[str]) -> ToolRegistry:
    reg = ToolRegistry()

    @reg.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        counter.append("add")
        return a + b

    @reg.tool(idempotent=False)
    def charge(amount: float) -> str:
        """Charge a card (not idempotent)."""
        counter.append("charge")
        return f"charged {amount}"

    return reg


def _calls(redis, counter) -> ToolCalls:
    return ToolCalls(redis, _registry(counter), EventLog(redis))


def test_redelivered_call_does_not_run_again() -> None:
    redis, ran = fakeredis.FakeRedis(), []
    tools = _calls(redis, ran)
    call = ToolCall("j1", 1, "c1", "add", '{"a": 2, "b": 3}', expected=2)
    assert tools.run(call, allowed=["add"]) is False
    assert tools.run(call, allowed=["add"]) is False  # a duplicate: stored output reused
    assert ran == ["add"]
    assert tools.outputs("j1", 1)["c1"].output == "5"


def test_exactly_one_call_completes_the_round_under_duplicates() -> None:
    redis, ran = fakeredis.FakeRedis(), []
    tools = _calls(redis, ran)
    calls = [
        ToolCall("j2", 1, f"c{i}", "add", f'{{"a": {i}, "b": 1}}', expected=3) for i in range(3)
    ]
    completions: list[bool] = []
    lock = threading.Lock()

    def worker(call: ToolCall) -> None:
        done = tools.run(call, allowed=["add"])
        with lock:
            completions.append(done)

    threads = [threading.Thread(target=worker, args=(c,)) for c in calls * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert completions.count(True) == 1
    assert len(tools.outputs("j2", 1)) == 3


def test_the_call_that_completed_its_round_completes_nothing_when_delivered_again() -> None:
    # The task that completed the round died before its submit: its redelivery finds the
    # output and must not submit a second time (the sweeper re-drives the submit step).
    redis, ran = fakeredis.FakeRedis(), []
    tools = _calls(redis, ran)
    first = ToolCall("j3", 1, "c1", "add", '{"a": 1, "b": 1}', expected=2)
    last = ToolCall("j3", 1, "c2", "add", '{"a": 2, "b": 2}', expected=2)
    assert tools.run(first, allowed=["add"]) is False
    assert tools.run(last, allowed=["add"]) is True
    assert tools.run(last, allowed=["add"]) is False
    assert tools.run(first, allowed=["add"]) is False
    assert ran == ["add", "add"]
    assert redis.ttl(keys.tool_output("j3", 1)) > 0


def test_bad_calls_become_error_outputs() -> None:
    redis, ran = fakeredis.FakeRedis(), []
    tools = _calls(redis, ran)
    cases = {
        "c1": ("nope", "{}", "unknown_tool"),
        "c2": ("add", "{not json", "invalid_json"),
        "c3": ("add", '{"a": "two", "b": 1}', "invalid_arguments"),
    }
    for call_id, (name, args, _) in cases.items():
        tools.run(ToolCall("j3", 1, call_id, name, args, expected=3), allowed=["add", "nope"])
    stored = tools.outputs("j3", 1)
    for call_id, (_, _, code) in cases.items():
        assert stored[call_id].error == code
        assert json.loads(stored[call_id].output)["error"]["code"] == code
    assert ran == []


def test_tool_not_enabled_for_the_job_is_refused() -> None:
    redis, ran = fakeredis.FakeRedis(), []
    tools = _calls(redis, ran)
    tools.run(ToolCall("j4", 1, "c1", "add", '{"a": 1, "b": 1}', expected=1), allowed=["charge"])
    assert tools.outputs("j4", 1)["c1"].error == "unknown_tool"
    assert ran == []


def test_interrupted_non_idempotent_call_is_not_run_twice() -> None:
    redis, ran = fakeredis.FakeRedis(), []
    tools = _calls(redis, ran)
    # An earlier attempt marked the effect started, then its worker died before storing.
    effect = hashlib.sha256(json.dumps(["charge", {"amount": 5}], sort_keys=True).encode())
    redis.hset(keys.tool_effects("j5"), effect.hexdigest(), "\x00started")
    tools.run(ToolCall("j5", 1, "c1", "charge", '{"amount": 5}', expected=1), allowed=["charge"])
    assert ran == []
    assert tools.outputs("j5", 1)["c1"].error == "tool_interrupted"


def test_a_restarted_run_asking_again_gets_the_stored_effect() -> None:
    redis, ran = fakeredis.FakeRedis(), []
    tools = _calls(redis, ran)
    tools.run(ToolCall("j7", 1, "c1", "charge", '{"amount": 5}', expected=1), allowed=["charge"])
    # The run failed after the round; the fresh run asks again, with a new call id.
    tools.run(ToolCall("j7", 1, "c9", "charge", '{"amount": 5}', expected=1), allowed=["charge"])
    assert ran == ["charge"]
    assert tools.outputs("j7", 1)["c9"].output == "charged 5"


def test_cancelled_job_runs_no_tool() -> None:
    redis, ran = fakeredis.FakeRedis(), []
    tools = _calls(redis, ran)
    tools.run(
        ToolCall("j6", 1, "c1", "add", '{"a": 1, "b": 1}', expected=1),
        allowed=["add"],
        cancelled=True,
    )
    assert ran == []
    assert tools.outputs("j6", 1)["c1"].error == "cancelled"
