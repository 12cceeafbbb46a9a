"""A fallback chain with a dead first link, for real: worker, Redis and sandbox over HTTP."""

from __future__ import annotations

import json

import pytest

from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.worker.launcher import Stack, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chain_stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("chain")
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: connection refused
    chains = {
        "resilient": [
            {"backend": "responses", "model": "gpt-5", "base_url": dead},
            {"backend": "responses", "model": "gpt-5-mini"},
            {"kind": "template", "message": "We are busy; please try again later."},
        ],
        "doomed": [
            {"backend": "responses", "model": "gpt-5", "base_url": dead},
            {"kind": "template", "message": "We are busy; please try again later."},
        ],
    }
    env = {"RUNQ_TEST_MODE": "1", "RUNQ_CHAINS": json.dumps(chains), "RUNQ_REQUEST_TIMEOUT": "2"}
    with Stack(home=home, concurrency=2, worker_log=home / "worker.log", worker_env=env) as stack:
        settings = load_settings(redis_url=stack.redis_url, chains=chains)
        yield Client(stack.redis_url, settings)


def test_dead_link_falls_back_and_says_so(chain_stack: Client) -> None:
    result = chain_stack.submit("hello chains", chain="resilient").result(timeout=60)
    assert result["status"] == "succeeded"
    assert result["source"] == "responses:gpt-5-mini"
    assert result["fallback_used"] is True
    assert result["attempts"][0]["link"].startswith("responses:gpt-5@http://127.0.0.1:")
    assert result["attempts"][0]["code"] == "connection"
    assert "hello chains" in result["output_text"]


def test_template_is_the_last_word(chain_stack: Client) -> None:
    result = chain_stack.submit("anyone there?", chain="doomed").result(timeout=60)
    assert (result["status"], result["source"]) == ("succeeded", "template")
    assert result["output_text"] == "We are busy; please try again later."


def test_unknown_chain_is_refused_before_enqueueing(chain_stack: Client) -> None:
    from runq.errors import InvalidJobError

    with pytest.raises(InvalidJobError, match="chain: unknown chain 'nope'"):
        chain_stack.submit("hi", chain="nope")
