"""Fuzz the gateway against its own OpenAPI description with schemathesis.

No response may be a 5xx, and every response must match the documented status codes,
content types and schemas. Bounded: at most 50 examples per operation. The gateway runs
in-process (uvicorn in a thread) on its own Redis database that no worker reads, so the
fuzzed jobs are only queued, never run. It has a webhook secret, as in webhook mode.

Beyond every operation with random ids: the routes added with hosted tools, files,
conversations and webhooks are fuzzed where they do something. POST /v1/jobs with
`tier`, `files` and `tools` always present; the job and conversation routes on a job and
a conversation that exist (their other parameters and bodies fuzzed); and the webhook
endpoint with arbitrary headers and bodies, unsigned (400 or 401) and signed with the
secret (200 or 400: a signed body that is no event is refused, never a 500).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
import uvicorn
from hypothesis import strategies as st
from schemathesis.checks import positive_data_acceptance

from runq.config.settings import load_settings
from runq.producers.gateway import create_app
from runq.worker.launcher import free_port
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

TOKEN = "fuzz-token"
FUZZ_DB = 9
WEBHOOK_SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
NEW_OPERATIONS = {
    "POST /v1/conversations",
    "GET /v1/conversations/{conversation}",
    "GET /v1/jobs/{job_id}/files",
    "GET /v1/jobs/{job_id}/files/{name}",
    "POST /v1/webhooks/openai",
}


@pytest.fixture(scope="module")
def gateway_url(redis_url: str) -> Iterator[str]:
    db_url = f"{redis_url.rsplit('/', 1)[0]}/{FUZZ_DB}"
    settings = load_settings(redis_url=db_url, webhook_secret=WEBHOOK_SECRET)
    app = create_app({TOKEN: "fuzz"}, redis_url=db_url, settings=settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=20, what="uvicorn")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


SETTINGS = hypothesis.settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)


HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def call_and_check(case: Any) -> None:
    """Call, validate against the schema, and allow only runq's own 422s.

    A schema-valid body may still break a rule between fields that JSON schema cannot
    say (a setting the chosen backend lacks): runq refuses it with a 422 of its own
    (`value_error`), which is allowed; a schema-level 422 is not.
    """
    response = case.call_and_validate(
        headers=HEADERS, timeout=10, excluded_checks=[positive_data_acceptance]
    )
    if response.status_code == 422:
        types = {e.get("type") for e in response.json()["detail"]}
        assert types == {"value_error"}, response.text


def fuzz(operations: list[Any], pin: dict[str, str] | None = None) -> list[str]:
    """Each operation's failures (none is good); `pin` fixes path parameters by name."""
    failures: list[str] = []
    for operation in operations:

        @SETTINGS
        @hypothesis.given(case=operation.as_strategy())
        def check(case: Any) -> None:
            for name, value in (pin or {}).items():
                if name in (case.path_parameters or {}):
                    case.path_parameters[name] = value
            call_and_check(case)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    return failures


def test_gateway_conforms_to_its_openapi(gateway_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= NEW_OPERATIONS
    failures = fuzz(operations)
    assert not failures, "\n\n".join(failures)


def test_job_requests_with_tier_files_and_tools_conform(gateway_url: str) -> None:
    """The same schema with `tier`, `files` and `tools` required: every example has them."""
    document = httpx.get(f"{gateway_url}/openapi.json", timeout=10).json()
    forced = copy.deepcopy(document)
    request = forced["components"]["schemas"]["JobRequest"]
    request["required"] = sorted({*request.get("required", []), "tier", "files", "tools"})
    schema = schemathesis.openapi.from_dict(forced)
    schema.config.update(base_url=gateway_url)
    (operation,) = [
        result.ok()
        for result in schema.get_all_operations()
        if result.ok().label == "POST /v1/jobs"
    ]
    failures = fuzz([operation])
    assert not failures, "\n\n".join(failures)


def test_routes_of_an_existing_job_and_conversation_conform(gateway_url: str) -> None:
    """Ids that exist, so the routes answer past their 404; the rest is fuzzed."""
    job = httpx.post(f"{gateway_url}/v1/jobs", json={"input": "hello"}, headers=HEADERS, timeout=10)
    assert job.status_code == 201, job.text
    transcript = [{"role": "user", "text": "hi"}, {"role": "assistant", "text": "hello"}]
    conversation = httpx.post(
        f"{gateway_url}/v1/conversations",
        json={"transcript": transcript},
        headers=HEADERS,
        timeout=10,
    )
    assert conversation.status_code == 201, conversation.text
    pin = {"job_id": job.json()["job_id"], "conversation": conversation.json()["conversation"]}
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    streams = "GET /v1/jobs/{job_id}/events"  # a queued job's stream would wait for its end
    operations = sorted(
        (r.ok() for r in schema.get_all_operations() if r.ok().label != streams),
        key=lambda op: op.label.endswith("/cancel"),  # cancel last: the rest see a live job
    )
    pinned = [op for op in operations if any(f"{{{name}}}" in op.path for name in pin)]
    assert {op.label for op in pinned} >= {
        "GET /v1/jobs/{job_id}/files",
        "GET /v1/jobs/{job_id}/files/{name}",
        "GET /v1/conversations/{conversation}",
        "POST /v1/jobs/{job_id}/cancel",
    }
    failures = fuzz(pinned, pin)
    assert not failures, "\n\n".join(failures)


def sign(body: bytes, webhook_id: str, timestamp: int) -> str:
    """A Standard Webhooks signature with the gateway's secret (as OpenAI signs)."""
    key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
EVENTS = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=30) | JSON_VALUES,
        "object": st.just("event") | JSON_VALUES,
        "created_at": st.integers() | JSON_VALUES,
        "type": st.sampled_from(["response.completed", "response.failed", "batch.completed"])
        | st.text(max_size=30),
        "data": st.fixed_dictionaries({}, optional={"id": st.text(max_size=40) | JSON_VALUES})
        | JSON_VALUES,
    },
)


def test_webhook_endpoint_never_fails_on_odd_deliveries(gateway_url: str) -> None:
    url = f"{gateway_url}/v1/webhooks/openai"
    header_names = st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"])

    @SETTINGS
    @hypothesis.given(
        headers=st.dictionaries(header_names, st.text("v1,=abc0123+/", max_size=40)),
        body=st.binary(max_size=200),
    )
    def unsigned(headers: dict[str, str], body: bytes) -> None:
        answer = httpx.post(url, content=body, headers=headers, timeout=10)
        assert answer.status_code in (400, 401), answer.text

    @SETTINGS
    @hypothesis.given(event=EVENTS | JSON_VALUES, webhook_id=st.text("abc_123", min_size=1))
    def signed(event: Any, webhook_id: str) -> None:
        body = json.dumps(event).encode()
        now = int(time.time())
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(now),
            "webhook-signature": sign(body, webhook_id, now),
            "content-type": "application/json",
        }
        answer = httpx.post(url, content=body, headers=headers, timeout=10)
        assert answer.status_code in (200, 400), answer.text

    unsigned()
    signed()
