from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runq.errors import InvalidJobError
from runq.runs.job import Job, JobSpec, JobStatus


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"input": ""}, "input"),
        ({"input": "   "}, "input"),
        ({"input": []}, "input"),
        ({"input": "hi", "backend": "carrier-pigeon"}, "backend"),
        ({"input": "hi", "mode": "telepathy"}, "mode"),
        ({"input": "hi", "deadline": -1}, "deadline"),
        ({"input": "hi", "deadline": 0}, "deadline"),
        ({"input": "hi", "max_tool_rounds": 0}, "max_tool_rounds"),
        ({"input": "hi", "metadata": {"a": 1}}, "metadata"),
        ({"input": "hi", "previous_response_id": "r", "conversation_id": "c"}, "conversation_id"),
        ({"input": "hi", "thread_id": "t"}, "thread_id"),
        # Wrong types from Python callers are named too, never an AttributeError later
        # or a string taken apart letter by letter.
        ({"input": "hi", "model": 5}, "model"),
        ({"input": "hi", "model": ""}, "model"),
        ({"input": "hi", "instructions": ["be brief"]}, "instructions"),
        ({"input": "hi", "tools": "calculator"}, "tools"),
        ({"input": "hi", "vector_store_ids": "vs_1"}, "vector_store_ids"),
        ({"input": "hi", "metadata": "x"}, "metadata"),
        ({"input": "hi", "metadata": {f"k{n}": "v" for n in range(14)}}, "metadata"),
        ({"input": "hi", "metadata": {"k": "v" * 513}}, "metadata.k"),
        ({"input": "hi", "deadline": True}, "deadline"),
        ({"input": "hi", "max_tool_rounds": 2.5}, "max_tool_rounds"),
        ({"input": "hi", "max_output_tokens": "100"}, "max_output_tokens"),
        ({"input": [{"role": "user"}]}, "input[0].content"),
        ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": "hi"}, {"content": "x"}]}, "input[1]"),
        ({"input": [{"role": "user", "content": "hi"}, {"type": 3}]}, "input[1]"),
    ],
)
def test_bad_specs_name_the_option(options: dict, option: str) -> None:
    with pytest.raises(InvalidJobError) as info:
        JobSpec(**options).validate()
    assert info.value.option == option
    assert str(info.value).startswith(option + ":")


def test_unknown_backend_lists_the_choices() -> None:
    with pytest.raises(InvalidJobError, match="responses, assistants, chat"):
        JobSpec(input="hi", backend="nope").validate()


def test_round_trip_keeps_everything() -> None:
    job = Job.new(JobSpec(input="hi", tools=["calculator"], metadata={"k": "v"}).validate())
    job.handle["response_id"] = "resp_1"
    job.usage = {"total_tokens": 3}
    again = Job.from_dict(job.to_dict())
    assert again == job


def test_transitions_follow_the_state_machine() -> None:
    job = Job.new(JobSpec(input="hi"))
    assert job.status == JobStatus.QUEUED
    job.move(JobStatus.RUNNING)
    job.move(JobStatus.SUCCEEDED)
    assert job.terminal
    with pytest.raises(ValueError, match="illegal transition succeeded -> running"):
        job.move(JobStatus.RUNNING)
    other = Job.new(JobSpec(input="hi"))
    other.move(JobStatus.CANCELLED)
    with pytest.raises(ValueError):
        other.move(JobStatus.FAILED)


def test_due_bumps_the_token() -> None:
    job = Job.new(JobSpec(input="hi"))
    first = job.due("poll")
    second = job.due("poll")
    assert (job.step, second) == ("poll", first + 1)


def test_result_has_the_stable_keys() -> None:
    job = Job.new(JobSpec(input="hi"))
    job.mark("finished_at")
    result = job.result()
    for key in (
        "job_id",
        "status",
        "output_text",
        "citations",
        "tool_calls",
        "usage",
        "timings",
        "source",
        "fallback_used",
        "attempts",
        "backend_ids",
    ):
        assert key in result
    assert result["timings"]["total_s"] >= 0


def test_result_timings_are_iso_8601_utc_and_durations_in_seconds() -> None:
    job = Job.new(JobSpec(input="hi"))
    job.timings = {
        "queued_at": 1_795_986_184.1234,  # 2026-11-29T21:03:04.123Z
        "started_at": 1_795_986_184.6234,
        "run_created_at": 1_795_986_184.8,
        "run_completed_at": 1_795_986_187.3,
        "finished_at": 1_795_986_187.5,
    }
    timings = job.result()["timings"]
    assert timings["queued_at"] == "2026-11-29T21:03:04.123Z"
    assert timings["finished_at"] == "2026-11-29T21:03:07.500Z"
    for name in ("started_at", "run_created_at", "run_completed_at"):
        assert datetime.fromisoformat(timings[name]).tzinfo == UTC
    assert (timings["queue_s"], timings["run_s"], timings["total_s"]) == (0.5, 2.5, 3.377)
    assert job.timings["queued_at"] == 1_795_986_184.1234, "the record keeps its floats"


def test_a_job_still_queued_has_no_durations_yet() -> None:
    timings = Job.new(JobSpec(input="hi")).result()["timings"]
    assert list(timings) == ["queued_at"]
    assert timings["queued_at"].endswith("Z")


def test_metadata_limits_leave_room_for_runqs_own_pairs() -> None:
    from runq.runs.backends.base import run_metadata
    from runq.runs.job import MAX_METADATA_PAIRS, RUN_METADATA_KEYS

    spec = JobSpec(input="hi", metadata={f"k{n}": "v" for n in range(MAX_METADATA_PAIRS)})
    job = Job.new(spec.validate())
    sent = run_metadata(job)
    assert set(sent) - set(spec.metadata) == set(RUN_METADATA_KEYS)
    assert len(sent) == 16  # the API's limit, reached and not passed
    # A job cannot pass itself off as another: runq's own pairs win.
    mine = Job.new(JobSpec(input="hi", metadata={"runq_job_id": "someone-else"}).validate())
    assert run_metadata(mine)["runq_job_id"] == mine.id


def test_message_lists_and_other_items_pass() -> None:
    items = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "function_call_output", "call_id": "c", "output": "{}"},
        # A Chat Completions transcript: a tool call without content, then its result.
        {"role": "assistant", "content": None, "tool_calls": [{"id": "t", "type": "function"}]},
        {"role": "tool", "tool_call_id": "t", "content": "42"},
    ]
    assert JobSpec(input=items).validate().input == items
