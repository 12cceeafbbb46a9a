"""Model settings: each checked before enqueueing, mapped per backend, refused where a
backend lacks it; chain links override them."""

from __future__ import annotations

from typing import Any

import pytest

from runq.errors import ConfigurationError, InvalidJobError
from runq.runs import model_settings
from runq.runs.chains import Link, parse_chains
from runq.runs.job import Job, JobSpec


def spec(**options: Any) -> JobSpec:
    return JobSpec(input="hi", **options)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("temperature", 2.5),
        ("temperature", "hot"),
        ("temperature", True),
        ("top_p", -0.1),
        ("reasoning", {"effort": "extreme"}),
        ("reasoning", {"summary": "long"}),
        ("reasoning", {"budget": 3}),
        ("reasoning", "low"),
        ("max_output_tokens", 0),
        ("service_tier", "gold"),
        ("prompt_cache_key", ""),
        ("safety_identifier", "x" * 65),
        ("truncation", "sometimes"),
        ("tool_choice", "always"),
        ("tool_choice", {"type": "function"}),
        ("parallel_tool_calls", "yes"),
        ("store", 1),
        ("include", ["everything"]),
        ("include", "reasoning.encrypted_content"),
    ],
)
def test_each_setting_is_checked_and_named(option: str, value: Any) -> None:
    with pytest.raises(InvalidJobError) as err:
        spec(**{option: value}).validate()
    assert err.value.option.split(".")[0] == option


def test_valid_settings_pass() -> None:
    spec(
        temperature=0.2, top_p=0.9, reasoning={"effort": "low", "summary": "auto"},
        max_output_tokens=300, service_tier="flex", prompt_cache_key="faq",
        safety_identifier="user-1", truncation="auto", tool_choice="required",
        parallel_tool_calls=False, include=["reasoning.encrypted_content"],
    ).validate()  # fmt: skip


def test_a_named_tool_choice_must_be_one_of_the_jobs_tools() -> None:
    with pytest.raises(InvalidJobError, match="tool_choice: names 'weather'"):
        spec(tool_choice={"type": "function", "name": "weather"}).validate()
    spec(tools=["weather"], tool_choice={"type": "function", "name": "weather"}).validate()


@pytest.mark.parametrize(
    ("backend", "option", "value", "says"),
    [
        ("chat", "truncation", "auto", "Chat Completions has no such parameter"),
        ("chat", "include", ["reasoning.encrypted_content"], "no such parameter"),
        ("chat", "reasoning", {"effort": "low", "summary": "auto"}, "no summary"),
        ("assistants", "service_tier", "flex", "Assistants runs have no such parameter"),
        ("assistants", "prompt_cache_key", "k", "no such parameter"),
        ("assistants", "safety_identifier", "u", "no such parameter"),
        ("assistants", "truncation", "disabled", "never not at all"),
        ("responses", "store", False, "must be stored"),
    ],
)
def test_a_backend_without_the_setting_refuses_the_job(backend, option, value, says) -> None:
    with pytest.raises(InvalidJobError) as err:
        spec(backend=backend, **{option: value}).validate()
    assert err.value.option == option
    assert f"the {backend} backend cannot carry it" in str(err.value)
    assert says in str(err.value)


def test_responses_takes_every_setting_by_its_own_name() -> None:
    values = model_settings.values_of(
        spec(temperature=0.1, reasoning={"effort": "low"}, service_tier="flex",
             max_output_tokens=50, truncation="auto", include=["file_search_call.results"],
             tool_choice="none", store=True)
    )  # fmt: skip
    assert model_settings.responses_fields(values) == {
        "temperature": 0.1, "reasoning": {"effort": "low"}, "service_tier": "flex",
        "max_output_tokens": 50, "truncation": "auto",
        "include": ["file_search_call.results"], "tool_choice": "none",
    }  # fmt: skip


def test_chat_names_them_its_way() -> None:
    values = model_settings.values_of(
        spec(backend="chat", reasoning={"effort": "high"}, max_output_tokens=40,
             tools=["t"], tool_choice={"type": "function", "name": "t"}, store=False,
             prompt_cache_key="k", safety_identifier="u", service_tier="priority")
    )  # fmt: skip
    assert model_settings.chat_fields(values) == {
        "reasoning_effort": "high", "max_completion_tokens": 40,
        "tool_choice": {"type": "function", "function": {"name": "t"}}, "store": False,
        "prompt_cache_key": "k", "safety_identifier": "u", "service_tier": "priority",
    }  # fmt: skip


def test_assistants_split_run_and_assistant_settings() -> None:
    values = model_settings.values_of(
        spec(backend="assistants", reasoning={"effort": "low"}, max_output_tokens=40,
             temperature=0.5, truncation="auto", parallel_tool_calls=False)
    )  # fmt: skip
    assert model_settings.assistants_run_fields(values) == {
        "temperature": 0.5, "parallel_tool_calls": False, "max_completion_tokens": 40,
        "truncation_strategy": {"type": "auto"},
    }  # fmt: skip
    assert model_settings.assistants_assistant_fields(values) == {"reasoning_effort": "low"}


def test_a_link_overrides_the_jobs_settings() -> None:
    chains = parse_chains({"c": {"links": [
        {"backend": "responses", "model": "gpt-5-mini", "reasoning": {"effort": "low"}},
    ]}})  # fmt: skip
    link = chains["c"][0]
    assert link.settings == {"reasoning": {"effort": "low"}}
    job_spec = spec(reasoning={"effort": "high"}, temperature=0.3)
    assert model_settings.effective(job_spec, link.settings) == {
        "reasoning": {"effort": "low"}, "temperature": 0.3,
    }  # fmt: skip
    hash(link)  # a link stays usable as a key


@pytest.mark.parametrize(
    ("link", "says"),
    [
        ({"backend": "responses", "model": "m", "temperature": 9}, "temperature"),
        ({"backend": "chat", "model": "m", "truncation": "auto"}, "cannot carry"),
        ({"kind": "template", "message": "x", "temperature": 0.1}, "only a model link"),
    ],
)
def test_bad_link_settings_fail_the_configuration(link: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        parse_chains({"c": {"links": [link]}})


def test_the_factory_refuses_a_link_that_cannot_carry_the_jobs_settings() -> None:
    from runq.runs.backends import BackendFactory
    from runq.runs.tools import ToolRegistry

    factory = BackendFactory(base_url="http://127.0.0.1:9/v1", api_key="k", timeout=1,
                             registry=ToolRegistry())  # fmt: skip
    job = Job.new(spec(truncation="auto").validate())
    with pytest.raises(ConfigurationError, match="link chat:m cannot carry truncation"):
        factory(job, Link(backend="chat", model="m"))
    assert factory(job, Link(backend="responses", model="m")).settings == {}


def test_old_records_load_without_the_new_fields() -> None:
    record = Job.new(spec()).to_dict()
    for name in [*model_settings.SETTINGS, "output_schema", "output_name", "output_strict"]:
        record["spec"].pop(name, None)
    record.pop("output_parsed")
    job = Job.from_dict(record)
    assert job.spec.temperature is None and job.output_parsed is None
    assert model_settings.values_of(job.spec) == {}
    assert job.result()["output_parsed"] is None


def test_tenant_safety_identifier_is_stable_and_hides_the_name() -> None:
    one = model_settings.tenant_safety_identifier("acme")
    assert one == model_settings.tenant_safety_identifier("acme")
    assert "acme" not in one and len(one) <= 64
    assert one != model_settings.tenant_safety_identifier("acme2")
