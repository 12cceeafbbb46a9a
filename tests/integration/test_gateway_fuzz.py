"""Fuzz the gateway against its own OpenAPI description with schemathesis.

No response may be a 5xx, and every response must match the documented status codes,
content types and schemas. Bounded: at most 50 examples per operation. The gateway runs
in-process (uvicorn in a thread) on its own Redis database that no worker reads, so the
fuzzed jobs are only queued, never run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
import uvicorn
from schemathesis.checks import positive_data_acceptance

from runq.config.settings import load_settings
from runq.producers.gateway import create_app
from runq.worker.launcher import free_port
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

TOKEN = "fuzz-token"
FUZZ_DB = 9


@pytest.fixture(scope="module")
def gateway_url(redis_url: str) -> Iterator[str]:
    db_url = f"{redis_url.rsplit('/', 1)[0]}/{FUZZ_DB}"
    app = create_app({TOKEN: "fuzz"}, redis_url=db_url, settings=load_settings(redis_url=db_url))
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


def test_gateway_conforms_to_its_openapi(gateway_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5
    failures: list[str] = []
    for operation in operations:

        @SETTINGS
        @hypothesis.given(case=operation.as_strategy())
        def check(case: Any) -> None:
            # A schema-valid body may still break a rule between fields that JSON schema
            # cannot say (a setting the chosen backend lacks): runq refuses it with a 422
            # of its own (`value_error`), which is allowed; a schema-level 422 is not.
            response = case.call_and_validate(
                headers=headers, timeout=10, excluded_checks=[positive_data_acceptance]
            )
            if response.status_code == 422:
                types = {e.get("type") for e in response.json()["detail"]}
                assert types == {"value_error"}, response.text

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
