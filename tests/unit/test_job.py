from __future__ import annotations

import pytest

from runs.errors import InvalidJobError
from runs.job import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, Job, JobSpec


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
    assert job.status == QUEUED
    job.move(RUNNING)
    job.move(SUCCEEDED)
    assert job.terminal
    with pytest.raises(ValueError, match="illegal transition succeeded -> running"):
        job.move(RUNNING)
    other = Job.new(JobSpec(input="hi"))
    other.move(CANCELLED)
    with pytest.raises(ValueError):
        other.move(FAILED)


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
