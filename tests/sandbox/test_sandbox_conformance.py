"""Conformance: every object the sandbox returns validates against the ``openai``
package's types (no required field missing) and the OpenAPI schema of its operation.

The spec path comes from ``RUNQ_OPENAPI_SPEC`` (default ``../shared/spec/
openai-openapi.yaml`` from the repo root). Without it the schema checks are reported
as an error under ``RUNQ_CI`` (fail, never skip); elsewhere only the type checks run.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
import yaml
from openai.types import FileObject, Model
from openai.types.beta import Assistant, Thread
from openai.types.beta.threads import Message, Run
from openai.types.beta.threads.runs import RunStep
from openai.types.chat import ChatCompletion
from openai.types.responses import Response
from openai.types.vector_store import VectorStore
from pydantic import BaseModel

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ROOT = Path(__file__).resolve().parents[2]


def spec_path() -> Path:
    """RUNQ_OPENAPI_SPEC, else the shared copy beside the checkout, else the vendored copy.

    The vendored copy (tests/spec, MIT, OpenAI) keeps a clean clone self-sufficient.
    """
    if os.environ.get("RUNQ_OPENAPI_SPEC"):
        return Path(os.environ["RUNQ_OPENAPI_SPEC"])
    shared = ROOT.parent / "shared" / "spec" / "openai-openapi.yaml"
    return shared if shared.exists() else ROOT / "tests" / "spec" / "openai-openapi.yaml"


@functools.lru_cache(maxsize=1)
def components() -> dict[str, Any] | None:
    path = spec_path()
    if not path.exists():
        raise AssertionError(f"OpenAPI spec missing at {path} (set RUNQ_OPENAPI_SPEC)")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open() as fh:
        return allow_nullable(yaml.load(fh, Loader=loader)["components"])


def allow_nullable(node: Any) -> Any:
    """OpenAPI's ``nullable: true`` (still used by this 3.1 document) means "or null"."""
    if isinstance(node, list):
        return [allow_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: allow_nullable(v) for k, v in node.items()}
    if out.pop("nullable", False):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def check(data: dict[str, Any], model: type[BaseModel], schema: str) -> None:
    """Strict enough: the type parses, no required field is missing, the schema holds."""
    missing = [
        n for n, f in model.model_fields.items() if f.is_required() and (f.alias or n) not in data
    ]
    assert not missing, f"{model.__name__} lacks required {missing}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.model_validate(data)
    comps = components()
    if comps is not None:
        validator = jsonschema.Draft202012Validator(
            {"$ref": f"#/components/schemas/{schema}", "components": comps}
        )
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
        assert not errors, f"{schema}: " + "; ".join(
            f"{list(e.path)}: {e.message[:200]}" for e in errors[:5]
        )


def raw(call: Any) -> dict[str, Any]:
    return call.http_response.json()


def test_spec_is_found_under_ci() -> None:
    if os.environ.get("RUNQ_CI"):
        assert components() is not None
    else:
        assert spec_path().name == "openai-openapi.yaml"


def test_responses_objects_conform(client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "name": "get_weather",
            "description": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    queued = raw(client.responses.with_raw_response.create(model="m", input="x", background=True))
    check(queued, Response, "Response")
    done = raw(
        client.responses.with_raw_response.create(model="m", input="weather in Paris", tools=tools)
    )
    check(done, Response, "Response")
    check(raw(client.responses.with_raw_response.cancel(queued["id"])), Response, "Response")


def test_chat_completion_conforms(client: openai.OpenAI) -> None:
    data = raw(
        client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    )
    check(data, ChatCompletion, "CreateChatCompletionResponse")


def test_assistants_objects_conform(client: openai.OpenAI) -> None:
    beta = client.beta
    assistant = raw(beta.assistants.with_raw_response.create(model="m", name="a"))
    check(assistant, Assistant, "AssistantObject")
    thread = raw(beta.threads.with_raw_response.create())
    check(thread, Thread, "ThreadObject")
    message = raw(
        beta.threads.messages.with_raw_response.create(thread["id"], role="user", content="hello")
    )
    check(message, Message, "MessageObject")
    run = raw(
        beta.threads.runs.with_raw_response.create(
            thread_id=thread["id"], assistant_id=assistant["id"]
        )
    )
    check(run, Run, "RunObject")
    from sandbox_helpers import wait_until

    done = wait_until(
        lambda: raw(
            beta.threads.runs.with_raw_response.retrieve(run["id"], thread_id=thread["id"])
        ),
        lambda r: r["status"] == "completed",
    )
    check(done, Run, "RunObject")
    steps = raw(beta.threads.runs.steps.with_raw_response.list(run["id"], thread_id=thread["id"]))
    for step in steps["data"]:
        check(step, RunStep, "RunStepObject")


def test_files_vector_stores_models_conform(client: openai.OpenAI) -> None:
    file = raw(
        client.files.with_raw_response.create(file=("a.txt", b"hello world."), purpose="assistants")
    )
    check(file, FileObject, "OpenAIFile")
    store = raw(client.vector_stores.with_raw_response.create(file_ids=[file["id"]]))
    check(store, VectorStore, "VectorStoreObject")
    model = raw(client.models.with_raw_response.retrieve("gpt-4o"))
    check(model, Model, "Model")
