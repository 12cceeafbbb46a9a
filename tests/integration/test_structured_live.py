"""Structured outputs and model settings for real: a worker, Redis and the sandbox over
HTTP. A pydantic `output_type` comes back as an instance on every backend; a refusal
(the sandbox's script channel) is retried, then the chain moves on; the settings, and
a link's override of them, reach the backend (the sandbox echoes them)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from runq.config.settings import load_settings
from runq.errors import InvalidJobError
from runq.producers.client.sync import Client
from runq.worker.launcher import SandboxProcess
from tests.conftest import wait_for
from tests.integration.conftest import stack_on

pytestmark = pytest.mark.integration

CHAINS: dict[str, Any] = {
    # The scripted refusal (metadata) refuses on every model link; a template whose
    # message satisfies the schema answers in its place.
    "refusing": [
        {"backend": "responses", "model": "gpt-4o-mini"},
        {"kind": "template", "message": '{"name": "Paris", "population": 0, "country": "-"}'},
    ],
    "effortless": [
        {"backend": "responses", "model": "gpt-5-mini", "reasoning": {"effort": "low"}},
    ],
    "typed_template": [
        {"backend": "responses", "model": "gpt-4o-mini"},
        {"kind": "template", "message": "We are busy."},
    ],
}
REFUSE = {"sandbox_script": json.dumps([[{"refusal": "I can't help with that."}]])}
PARIS = "Paris is the capital of France and has 2100000 inhabitants."


class City(BaseModel):
    name: str
    population: int
    country: str


@pytest.fixture(scope="module")
def client(redis_url: str, sandbox: SandboxProcess, tmp_path_factory) -> Iterator[Client]:
    env = {"RUNQ_CHAINS": json.dumps(CHAINS), "RUNQ_OUTPUT_RETRIES": "1"}
    home = tmp_path_factory.mktemp("structured")
    with stack_on(redis_url, sandbox, home, env=env) as stack:
        assert stack.redis_url is not None
        yield Client(stack.redis_url, load_settings(redis_url=stack.redis_url, chains=CHAINS))


@pytest.fixture(scope="module")
def backend(sandbox: SandboxProcess) -> openai.OpenAI:
    """The sandbox as the worker sees it, to read back what the worker sent."""
    return openai.OpenAI(base_url=sandbox.base_url, api_key="sandbox", max_retries=0)


def _stats(sandbox: SandboxProcess) -> dict[str, Any]:
    root = sandbox.base_url.removesuffix("/v1")
    stats: dict[str, Any] = httpx.get(f"{root}/sandbox/stats", timeout=5).json()
    return stats


@pytest.mark.parametrize("backend_name", ["responses", "chat", "assistants"])
def test_output_type_comes_back_as_an_instance(client: Client, backend_name: str) -> None:
    handle = client.submit(PARIS, backend=backend_name, model="gpt-4o-mini", output_type=City)
    city = handle.output(timeout=60)
    assert isinstance(city, City)
    assert city == City(name="Paris", population=2100000, country="France")
    result = handle.result()
    assert result["output_parsed"] == city.model_dump()
    assert json.loads(result["output_text"]) == city.model_dump()  # the raw answer stays


def test_a_refusal_is_retried_then_the_chain_moves_on(
    client: Client, sandbox: SandboxProcess
) -> None:
    handle = client.submit(PARIS, chain="refusing", metadata=REFUSE, output_type=City)
    city = handle.output(timeout=60)
    assert city == City(name="Paris", population=0, country="-")
    result = handle.result()
    assert (result["source"], result["fallback_used"]) == ("template", True)
    [refused] = result["attempts"]
    assert (refused["link"], refused["code"]) == ("responses:gpt-4o-mini", "output_refused")
    assert "I can't help with that." in refused["error"]
    # RUNQ_OUTPUT_RETRIES=1: the refusing link was asked twice.
    assert _stats(sandbox)["responses_created_by_job"][handle.id] == 2


def test_a_template_that_breaks_the_schema_is_skipped_and_the_job_fails(client: Client) -> None:
    from runq.errors import JobFailedError

    handle = client.submit(PARIS, chain="typed_template", metadata=REFUSE, output_type=City)
    with pytest.raises(JobFailedError) as err:
        handle.output(timeout=60)
    result = err.value.result
    assert result["error"]["code"] == "all_links_failed"
    codes = [(a["link"], a["code"]) for a in result["attempts"]]
    assert codes == [
        ("responses:gpt-4o-mini", "output_refused"),
        ("template", "output_invalid_json"),
    ]


def test_responses_settings_reach_the_backend(client: Client, backend: openai.OpenAI) -> None:
    result = client.submit(
        "Say hello.", backend="responses", model="gpt-5-mini",
        reasoning={"effort": "low", "summary": "auto"}, max_output_tokens=300,
        service_tier="flex", prompt_cache_key="faq-v1", safety_identifier="user-42",
        truncation="auto", include=["reasoning.encrypted_content"],
    ).result(timeout=60)  # fmt: skip
    assert result["status"] == "succeeded", result["error"]
    sent = backend.responses.retrieve(result["backend_ids"]["response_id"])
    assert sent.max_output_tokens == 300
    assert sent.reasoning is not None
    assert (sent.reasoning.effort, sent.reasoning.summary) == ("low", "auto")
    assert sent.service_tier == "flex"
    assert (sent.prompt_cache_key, sent.safety_identifier) == ("faq-v1", "user-42")
    assert sent.truncation == "auto"
    # Sampling settings go to a model that takes them (reasoning models refuse them).
    sampled = client.submit(
        "Say hello.", backend="responses", model="gpt-4o-mini", temperature=0.3, top_p=0.8
    ).result(timeout=60)
    assert sampled["status"] == "succeeded", sampled["error"]
    sent = backend.responses.retrieve(sampled["backend_ids"]["response_id"])
    assert (sent.temperature, sent.top_p) == (0.3, 0.8)


def test_a_chain_link_overrides_the_jobs_setting(client: Client, backend: openai.OpenAI) -> None:
    result = client.submit("Say hello.", chain="effortless", reasoning={"effort": "high"}).result(
        timeout=60
    )
    assert result["status"] == "succeeded", result["error"]
    sent = backend.responses.retrieve(result["backend_ids"]["response_id"])
    assert sent.reasoning is not None and sent.reasoning.effort == "low"


@pytest.mark.filterwarnings("ignore:The Assistants API is deprecated:DeprecationWarning")
def test_assistants_runs_get_their_settings(client: Client, backend: openai.OpenAI) -> None:
    result = client.submit(
        PARIS, backend="assistants", model="gpt-4o-mini", temperature=0.4, top_p=0.7,
        max_output_tokens=500, truncation="auto", output_type=City,
    ).result(timeout=60)  # fmt: skip
    assert result["status"] == "succeeded", result["error"]
    ids = result["backend_ids"]
    run = backend.beta.threads.runs.retrieve(ids["run_id"], thread_id=ids["thread_id"])
    assert (run.temperature, run.top_p, run.max_completion_tokens) == (0.4, 0.7, 500)
    assert run.truncation_strategy is not None and run.truncation_strategy.type == "auto"
    fmt = run.response_format
    assert getattr(fmt, "type", None) == "json_schema"


def test_chat_settings_reach_the_backend(client: Client, backend: openai.OpenAI) -> None:
    handle = client.submit(
        PARIS, backend="chat", model="gpt-4o-mini", temperature=0.2, service_tier="priority",
        max_output_tokens=400, output_type=City,
    )  # fmt: skip
    assert handle.output(timeout=60).country == "France"
    completion_id = handle.result()["backend_ids"]["chat_completion_id"]
    # Stored (Chat's `store` defaults to true in runq), so the request can be read back.
    stored = wait_for(lambda: backend.chat.completions.retrieve(completion_id),
                      what="the stored completion")  # fmt: skip
    assert stored.service_tier == "priority"


def test_a_setting_the_backend_lacks_is_refused_at_submit(client: Client) -> None:
    with pytest.raises(InvalidJobError, match="the assistants backend cannot carry it"):
        client.submit("hi", backend="assistants", service_tier="flex")
    with pytest.raises(InvalidJobError, match="truncation: the chat backend"):
        client.submit("hi", backend="chat", truncation="auto")
