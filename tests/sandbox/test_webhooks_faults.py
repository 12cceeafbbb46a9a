"""Webhook deliveries under failure: retries with backoff, and injected drops/delays/dups.

Each test serves its own sandbox, pointed at a real local receiver, and creates
background responses with the real ``openai`` client.
"""

from __future__ import annotations

import base64
import itertools
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai
import pytest
from sandbox_helpers import admin, is_terminal, wait_until
from webhook_receiver import Receiver

from runq.sandbox.engine.config import SandboxConfig, parse_faults
from runq.sandbox.engine.faults import FaultInjector
from runq.sandbox.server.serve import SandboxServer

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


@contextmanager
def sandbox(url: str, **settings: Any) -> Iterator[tuple[SandboxServer, openai.OpenAI]]:
    given: dict[str, Any] = {"latency_ms": 50, "webhook_retry_base_seconds": 0.05, **settings}
    config = SandboxConfig(port=0, webhook_url=url, webhook_secret=SECRET, **given)
    with SandboxServer(config) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=10)
        yield srv, client


def _hooks(srv: SandboxServer) -> dict[str, Any]:
    hooks: dict[str, Any] = admin(srv.url, "/sandbox/stats")["webhooks"]
    return hooks


def _settled(srv: SandboxServer, **expected: int) -> dict[str, Any]:
    """The counters once nothing is pending and they show ``expected``."""

    def done(h: dict[str, Any]) -> bool:
        return h["pending"] == 0 and all(h[k] == v for k, v in expected.items())

    return wait_until(lambda: _hooks(srv), done, timeout=15)


def _background(client: openai.OpenAI) -> str:
    return client.responses.create(model="gpt-4o-mini", input="Hi", background=True).id


def test_a_500_reply_is_retried_with_the_same_webhook_id_until_accepted() -> None:
    with Receiver(script=[500, 503]) as rcv, sandbox(rcv.url) as (srv, client):
        _background(client)
        got = rcv.wait_for(lambda ds: len(ds) == 3)
        assert [d.status for d in got] == [500, 503, 200]
        assert len({d.headers["webhook-id"] for d in got}) == 1
        assert len({d.body for d in got}) == 1
        for delivery in got:  # each attempt is signed afresh, and verifies
            client.webhooks.unwrap(delivery.body, delivery.headers, secret=SECRET)
        hooks = _settled(srv, succeeded=1)
        assert (hooks["sent"], hooks["retried"], hooks["abandoned"]) == (3, 2, 0)


def test_retries_wait_longer_each_time_and_stop_after_the_last_attempt() -> None:
    settings: dict[str, Any] = {"webhook_max_attempts": 4, "webhook_retry_base_seconds": 0.2}
    with Receiver(default_status=500) as rcv, sandbox(rcv.url, **settings) as (srv, client):
        _background(client)
        hooks = _settled(srv, abandoned=1)
        assert (hooks["sent"], hooks["retried"], hooks["succeeded"]) == (4, 3, 0)
        got = rcv.received()
        assert len(got) == 4
        gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(got)]
        # min(60, 0.2 * 2^(n-1)): 0.2, 0.4, 0.8 s (a little more for the round trips).
        for gap, planned in zip(gaps, (0.2, 0.4, 0.8), strict=True):
            assert planned - 0.05 <= gap < planned + 1.0


def test_a_connection_error_is_retried() -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hooks"
    with sandbox(url, webhook_max_attempts=3) as (srv, client):
        _background(client)
        hooks = _settled(srv, abandoned=1)
        assert (hooks["sent"], hooks["retried"], hooks["succeeded"]) == (3, 2, 0)


def test_a_dropped_delivery_is_never_sent() -> None:
    with Receiver() as rcv, sandbox(rcv.url, faults={"webhook_drop": 1.0}) as (srv, client):
        rid = _background(client)
        hooks = _settled(srv, dropped=1)
        assert hooks["events"] == {"response.completed": 1}
        assert hooks["sent"] == 0
        assert rcv.received() == []
        assert is_terminal(client.responses.retrieve(rid))  # the response itself ended
        assert admin(srv.url, "/sandbox/stats")["faults"] == {"webhook_drop": 1}


def test_a_duplicated_delivery_arrives_twice_with_the_same_webhook_id() -> None:
    faults = {"webhook_duplicate": 1.0}
    with Receiver() as rcv, sandbox(rcv.url, faults=faults) as (srv, client):
        rid = _background(client)
        got = rcv.wait_for(lambda ds: len(ds) == 2)
        assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
        events = [client.webhooks.unwrap(d.body, d.headers, secret=SECRET) for d in got]
        assert {e.id for e in events} == {events[0].id}
        assert {e.data.id for e in events} == {rid}
        hooks = _settled(srv, succeeded=2)
        assert (hooks["duplicated"], hooks["sent"]) == (1, 2)


def test_a_delayed_delivery_arrives_late() -> None:
    settings: dict[str, Any] = {"faults": {"webhook_delay": 1.0}, "webhook_delay_seconds": 1.5}
    with Receiver() as rcv, sandbox(rcv.url, **settings) as (srv, client):
        rid = _background(client)
        (delivery,) = rcv.wait_for(lambda ds: len(ds) == 1)
        done_at = srv.app.state.sandbox.store.responses[rid].timeline.done_at
        assert delivery.received_at >= done_at + 1.5
        client.webhooks.unwrap(delivery.body, delivery.headers, secret=SECRET)
        assert _settled(srv, succeeded=1)["delayed"] == 1


def test_webhook_faults_are_seeded_and_leave_the_request_dice_alone() -> None:
    profile = {"webhook_drop": 0.3, "webhook_duplicate": 0.3, "failed": 0.5}

    def webhook_draws(seed: int) -> list[str | None]:
        dice = FaultInjector(profile, seed)
        return [dice.webhook() for _ in range(40)]

    assert webhook_draws(3) == webhook_draws(3)
    assert webhook_draws(3) != webhook_draws(4)
    assert {"webhook_drop", "webhook_duplicate", None} == set(webhook_draws(3))

    alone, mixed = FaultInjector(profile, 3), FaultInjector(profile, 3)
    outcomes_alone = [alone.outcome(None) for _ in range(20)]
    outcomes_mixed = []
    for _ in range(20):
        mixed.webhook()  # deliveries happen on other threads, at any time
        outcomes_mixed.append(mixed.outcome(None))
    assert outcomes_alone == outcomes_mixed


def test_each_fault_family_has_its_own_budget() -> None:
    assert parse_faults("500=0.6,failed=0.6,webhook_drop=0.6")["webhook_drop"] == 0.6
    with pytest.raises(ValueError, match="webhook_drop, webhook_delay, webhook_duplicate"):
        parse_faults("webhook_drop=0.6,webhook_duplicate=0.6")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"webhook_url": "ftp://127.0.0.1/hooks"}, "webhook_url must be an http"),
        ({"webhook_url": "http:///no-host"}, "webhook_url must be an http"),
        ({"webhook_url": "http://127.0.0.1/hooks"}, "webhook_secret is required"),
        ({"webhook_secret": "not-a-whsec-secret"}, "webhook_secret must start with 'whsec_'"),
        ({"webhook_secret": "whsec_***"}, "webhook_secret must be 'whsec_' followed by base64"),
        ({"webhook_max_attempts": 0}, "webhook_max_attempts must be at least 1"),
    ],
)
def test_bad_webhook_settings_are_refused_by_name(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        SandboxConfig(**settings)
    secret = settings.get("webhook_secret")
    assert secret is None or secret not in str(caught.value)


def test_the_settings_come_from_the_environment() -> None:
    env = {
        "RUNQ_SANDBOX_WEBHOOK_URL": "https://hooks.example.test/openai",
        "RUNQ_SANDBOX_WEBHOOK_SECRET": SECRET,
        "RUNQ_SANDBOX_WEBHOOK_MAX_ATTEMPTS": "3",
    }
    config = SandboxConfig.from_env(env)
    assert (config.webhook_url, config.webhook_secret) == (env["RUNQ_SANDBOX_WEBHOOK_URL"], SECRET)
    assert config.webhook_max_attempts == 3
    assert SECRET not in repr(config)


def test_the_cli_refuses_a_bad_webhook_url_without_echoing_the_secret() -> None:
    argv = ["--port", "0", "--webhook-url", "file:///etc/passwd", "--webhook-secret", SECRET]
    proc = subprocess.run(
        [sys.executable, "-m", "runq.sandbox", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "webhook_url must be an http:// or https:// URL" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout
