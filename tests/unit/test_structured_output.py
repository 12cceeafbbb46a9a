"""Structured outputs: schema checks at submit, the request field per backend, the
worker's check of the answer and its outcome codes (retried, then the chain), and the
pydantic round trip of the Python API."""

from __future__ import annotations

import json
import time
from typing import Any
from unittest.mock import MagicMock

import pytest
from pydantic import BaseModel

from runq.errors import BackendError, InvalidJobError, JobFailedError
from runq.producers.client.output_types import schema_options, typed_output
from runq.runs import structured_output
from runq.runs.backends.assistants import AssistantsBackend
from runq.runs.backends.base import RunState
from runq.runs.backends.chat import ChatBackend
from runq.runs.backends.responses import ResponsesBackend, normalize
from runq.runs.chains import fingerprint, parse_chains
from runq.runs.error_codes import ErrorCode
from runq.runs.job import Job, JobSpec, JobStatus
from runq.runs.links import LinkServices
from runq.runs.retry import RetryPolicies, RetryPolicy
from runq.runs.step_config import StepConfig
from runq.runs.steps import Steps


class City(BaseModel):
    name: str
    population: int


class Loose(BaseModel):
    name: str
    note: str | None = None


SCHEMA = City.model_json_schema()


def spec(**options: Any) -> JobSpec:
    return JobSpec(input="Paris has 2100000 inhabitants.", output_schema=SCHEMA, **options)


# -- checks at submit --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"output_schema": {"type": "nothing"}}, "output_schema"),
        ({"output_schema": "a string"}, "output_schema"),
        ({"output_schema": SCHEMA, "output_name": "has space"}, "output_name"),
        ({"output_schema": SCHEMA, "output_strict": "yes"}, "output_strict"),
        ({"output_schema": Loose.model_json_schema(), "output_strict": True}, "output_strict"),
        ({"output_name": "x"}, "output_schema"),
    ],
)
def test_bad_schema_options_are_refused_by_name(options: dict[str, Any], option: str) -> None:
    with pytest.raises(InvalidJobError) as err:
        JobSpec(input="hi", **options).validate()
    assert err.value.option == option


def test_a_schema_that_requires_every_field_is_sent_strict_and_closed() -> None:
    schema, strict = structured_output.request_schema(spec())
    assert strict and schema["additionalProperties"] is False
    assert "additionalProperties" not in SCHEMA  # the job's own schema is left alone
    loose_spec = JobSpec(input="x", output_schema=Loose.model_json_schema())
    loose, strict = structured_output.request_schema(loose_spec)
    assert not strict and "additionalProperties" not in loose
    _, strict = structured_output.request_schema(spec(output_strict=False))
    assert not strict


# -- the request field per backend -------------------------------------------------------
def test_responses_sends_text_format() -> None:
    job = Job.new(spec(output_name="City", temperature=0.2).validate())
    params = ResponsesBackend(MagicMock())._common(job)
    fmt = params["text"]["format"]
    assert (fmt["type"], fmt["name"], fmt["strict"]) == ("json_schema", "City", True)
    assert fmt["schema"]["properties"] == SCHEMA["properties"]
    assert params["temperature"] == 0.2


def test_a_link_override_reaches_the_request() -> None:
    job = Job.new(spec(reasoning={"effort": "high"}).validate())
    params = ResponsesBackend(MagicMock(), settings={"reasoning": {"effort": "low"}})._common(job)
    assert params["reasoning"] == {"effort": "low"}


def test_chat_sends_response_format_and_drops_tool_options_without_tools() -> None:
    job = Job.new(spec(backend="chat", parallel_tool_calls=False, max_output_tokens=9).validate())
    params = ChatBackend(MagicMock())._params(job, [])
    assert params["response_format"]["type"] == "json_schema"
    assert params["response_format"]["json_schema"]["strict"] is True
    assert params["max_completion_tokens"] == 9
    assert "parallel_tool_calls" not in params


def test_assistants_runs_get_response_format_and_the_assistant_the_effort() -> None:
    client = MagicMock()
    client.beta.assistants.create.return_value.id = "asst_1"
    job = Job.new(spec(backend="assistants", temperature=0.4,
                       reasoning={"effort": "minimal"}).validate())  # fmt: skip
    backend = AssistantsBackend(client)
    backend._create_run(job, backend._assistant_id(job), stream=False)
    run = client.beta.threads.create_and_run.call_args.kwargs
    assert run["response_format"]["json_schema"]["name"] == "output"
    assert run["temperature"] == 0.4
    assert client.beta.assistants.create.call_args.kwargs["reasoning_effort"] == "minimal"


def test_a_responses_refusal_part_is_read() -> None:
    response = {"id": "r", "status": "completed", "output": [
        {"type": "message", "content": [{"type": "refusal", "refusal": "No."}]}]}  # fmt: skip
    assert normalize(response).refusal == "No."


# -- the worker's check ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "refusal", "code"),
    [
        ("not json", None, ErrorCode.OUTPUT_INVALID_JSON),
        ("", None, ErrorCode.OUTPUT_INVALID_JSON),
        ('{"name": "Paris"}', None, ErrorCode.OUTPUT_SCHEMA_MISMATCH),
        ('{"name": "Paris", "population": "many"}', None, ErrorCode.OUTPUT_SCHEMA_MISMATCH),
        ('{"name": "P", "population": 1, "extra": 1}', None, ErrorCode.OUTPUT_SCHEMA_MISMATCH),
        ("", "I can't help with that.", ErrorCode.OUTPUT_REFUSED),
    ],
)
def test_answers_off_the_schema_get_their_own_code(text: str, refusal: str | None, code) -> None:
    with pytest.raises(BackendError) as err:
        structured_output.parse(spec(), text, refusal)
    assert err.value.code == code and err.value.retryable


def test_a_valid_answer_is_parsed() -> None:
    value = structured_output.parse(spec(), '{"name": "Paris", "population": 2100000}')
    assert value == {"name": "Paris", "population": 2100000}


# -- through the steps: retried, then the chain ------------------------------------------
CHAIN = parse_chains({"main": {"links": [
    {"backend": "responses", "model": "big"},
    {"kind": "template", "message": "Busy, try later."},
    {"kind": "template", "message": '{"name": "Nowhere", "population": 0}'},
]}})  # fmt: skip
GOOD = '{"name": "Paris", "population": 2100000}'


def _steps(store, backend, scheduler, fake_redis, output_tries: int = 2) -> Steps:
    retry = RetryPolicies(output=RetryPolicy(max_attempts=output_tries), test_mode=True)
    return Steps(store, lambda job, link: backend, scheduler, lambda j, r: {},
                 services=LinkServices(fake_redis, chains=CHAIN, default_chain="main"),
                 retry=retry, config=StepConfig())  # fmt: skip


def _drive(steps, scheduler, job_spec: JobSpec) -> Job:
    job = Job.new(job_spec.validate())
    steps.store.create(job, [], lease_until=time.time() + 60)
    steps.run("start", job.id, 0)
    for _ in range(20):
        current = steps.store.get(job.id)
        if current.terminal:
            return current
        step, job_id, token, _ = scheduler.last()
        steps.run(step, job_id, token)
    raise AssertionError("job did not end")


def _done(text: str = "", refusal: str | None = None) -> RunState:
    return RunState("completed", handle={"response_id": "r"}, output_text=text, refusal=refusal)


def test_a_valid_answer_succeeds_with_output_parsed(store, backend, scheduler, fake_redis):
    backend.states = [_done(GOOD)]
    job = _drive(_steps(store, backend, scheduler, fake_redis), scheduler, spec())
    assert job.status == JobStatus.SUCCEEDED
    assert job.result()["output_parsed"] == json.loads(GOOD)


def test_a_refusal_is_retried_then_the_chain_skips_a_template_off_the_schema(
    store, backend, scheduler, fake_redis
):
    backend.states = [_done(refusal="No."), _done(refusal="Still no.")]
    job = _drive(_steps(store, backend, scheduler, fake_redis), scheduler, spec())
    assert backend.calls.count("start") == 2  # asked once more on the same link
    assert job.status == JobStatus.SUCCEEDED and job.source == "template"
    assert job.output_parsed == {"name": "Nowhere", "population": 0}
    codes = [(a["link"], a["code"]) for a in job.attempts]
    assert codes == [("responses:big", "output_refused"), ("template", "output_invalid_json")]
    assert "cannot honour the output schema" in job.attempts[1]["error"]


def test_a_retry_that_answers_properly_succeeds(store, backend, scheduler, fake_redis):
    backend.states = [_done('{"name": "Paris"}'), _done(GOOD)]
    job = _drive(_steps(store, backend, scheduler, fake_redis), scheduler, spec())
    assert (job.status, job.source, job.attempts) == (JobStatus.SUCCEEDED, "responses:big", [])


def test_output_failures_do_not_open_the_breaker(store, backend, scheduler, fake_redis):
    from runq.runs.breaker import CircuitBreaker

    backend.states = [_done("nope"), _done("nope")]
    services = LinkServices(fake_redis, chains=CHAIN, default_chain="main", breaker_failures=1)
    retry = RetryPolicies(output=RetryPolicy(2), test_mode=True)
    steps = Steps(store, lambda job, link: backend, scheduler, lambda j, r: {},
                  services=services, retry=retry, config=StepConfig())  # fmt: skip
    _drive(steps, scheduler, spec())
    assert CircuitBreaker(fake_redis, "responses:big", failure_threshold=1).ask().allowed


def test_the_cache_fingerprint_includes_the_schema() -> None:
    plain = JobSpec(input="Paris has 2100000 inhabitants.")
    assert fingerprint(spec()) != fingerprint(plain)
    assert fingerprint(plain) == fingerprint(JobSpec(input="Paris  has 2100000 inhabitants."))


# -- the Python API's typed output -------------------------------------------------------
def test_output_type_becomes_the_schema_and_comes_back_as_an_instance() -> None:
    options: dict[str, Any] = {"output_type": City}
    assert schema_options(options) is City
    assert options == {"output_schema": SCHEMA, "output_name": "City"}
    result = {"status": "succeeded", "output_parsed": {"name": "Paris", "population": 2}}
    city = typed_output("job_1", result, City)
    assert isinstance(city, City) and city.population == 2
    assert typed_output("job_1", result, None) == result["output_parsed"]


def test_output_of_a_failed_job_raises_with_the_result() -> None:
    result = {"status": "failed", "error": {"code": "output_schema_mismatch", "message": "m"}}
    with pytest.raises(JobFailedError) as err:
        typed_output("job_1", result, City)
    assert err.value.code == "output_schema_mismatch" and err.value.result is result


@pytest.mark.parametrize(
    "options",
    [{"output_type": dict}, {"output_type": City, "output_schema": {"type": "object"}}],
)
def test_output_type_must_be_a_model_and_alone(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidJobError, match="output_type"):
        schema_options(options)
