"""A fallback chain with a dead first link, for real: worker, Redis and sandbox over HTTP."""

from __future__ import annotations

import json

import pytest

from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.runs import keys
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
        # The first link's key variable is set nowhere: the worker cannot use that link.
        "keyless": [
            {"backend": "chat", "model": "llama-3.3", "api_key_env": "RUNQ_TEST_UNSET_KEY"},
            {"backend": "responses", "model": "gpt-5-mini"},
        ],
        "all_keyless": [
            {"backend": "chat", "model": "llama-3.3", "api_key_env": "RUNQ_TEST_UNSET_KEY"},
            {"backend": "responses", "model": "gpt-5", "api_key_env": "RUNQ_TEST_UNSET_KEY"},
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
    assert result["attempts"][0]["link"] == "responses:gpt-5"  # never the operator's host
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


def test_a_link_whose_api_key_is_not_set_is_skipped(chain_stack: Client) -> None:
    result = chain_stack.submit("hello keys", chain="keyless").result(timeout=60)
    assert result["status"] == "succeeded", result["error"]
    assert (result["source"], result["fallback_used"]) == ("responses:gpt-5-mini", True)
    [skipped] = result["attempts"]
    assert (skipped["link"], skipped["code"]) == ("chat:llama-3.3", "link_unusable")
    assert "RUNQ_TEST_UNSET_KEY" in skipped["error"]


def test_with_no_usable_link_the_job_fails_with_each_reason(chain_stack: Client) -> None:
    result = chain_stack.submit("hello keys", chain="all_keyless").result(timeout=60)
    assert result["status"] == "failed"
    assert result["error"]["code"] == "all_links_failed"
    assert "chat:llama-3.3: link_unusable" in result["error"]["message"]
    assert "responses:gpt-5: link_unusable" in result["error"]["message"]
    assert [a["code"] for a in result["attempts"]] == ["link_unusable", "link_unusable"]


def test_a_producer_without_the_chains_checks_against_the_workers(chain_stack: Client) -> None:
    """The README's case: chains in the worker's config only (another terminal's env)."""
    from runq.errors import InvalidJobError
    from tests.conftest import wait_for

    bare = Client(chain_stack.redis_url, load_settings(redis_url=chain_stack.redis_url))
    assert bare.settings.chains == {}
    wait_for(lambda: bare.redis.exists(keys.chain_catalog()), timeout=30, what="the catalog")
    result = bare.submit("hello from elsewhere", chain="resilient").result(timeout=60)
    assert result["status"] == "succeeded"
    with pytest.raises(InvalidJobError, match=r"unknown chain 'nope' \(chains: all_keyless, "):
        bare.submit("hi", chain="nope")
