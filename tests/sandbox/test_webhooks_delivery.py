"""The sandbox POSTs signed webhooks at the end of background responses, as OpenAI does.

A real HTTP receiver gets the deliveries; the real ``openai`` client creates the
responses and verifies every delivery with ``client.webhooks.unwrap``.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types.webhooks import (
    BatchCompletedWebhookEvent,
    ResponseCancelledWebhookEvent,
    ResponseCompletedWebhookEvent,
    ResponseFailedWebhookEvent,
    ResponseIncompleteWebhookEvent,
)
from sandbox_helpers import admin, is_terminal, wait_until
from webhook_receiver import Received, Receiver

from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.server.serve import SandboxServer

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as rcv:
        yield rcv


def _serve(receiver: Receiver, latency_ms: int) -> SandboxServer:
    config = SandboxConfig(
        port=0,
        latency_ms=latency_ms,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        webhook_retry_base_seconds=0.05,
    )
    return SandboxServer(config)


@pytest.fixture(scope="module")
def fast(receiver: Receiver) -> Iterator[SandboxServer]:
    with _serve(receiver, latency_ms=200) as srv:
        yield srv


@pytest.fixture(scope="module")
def slow(receiver: Receiver) -> Iterator[SandboxServer]:
    """Responses that stay in progress long enough to be cancelled."""
    with _serve(receiver, latency_ms=60_000) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest, receiver: Receiver) -> None:
    for name in ("fast", "slow"):
        if name in request.fixturenames:
            admin(request.getfixturevalue(name).url, "/sandbox/reset", "POST")
    receiver.clear()


def _client(srv: SandboxServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="sk-test", max_retries=0, timeout=10)


def _for(response_id: str, deliveries: list[Received]) -> list[Received]:
    return [d for d in deliveries if d.event["data"]["id"] == response_id]


def _create(client: openai.OpenAI, fault: str | None = None) -> str:
    headers = {"x-sandbox-fault": fault} if fault else None
    response = client.responses.create(
        model="gpt-4o-mini", input="Say hello.", background=True, extra_headers=headers
    )
    return response.id


def test_every_ending_of_a_background_response_is_delivered_and_verifies(
    fast: SandboxServer, slow: SandboxServer, receiver: Receiver
) -> None:
    client, slow_client = _client(fast), _client(slow)
    expected = {
        _create(client): ("completed", ResponseCompletedWebhookEvent),
        _create(client, "failed"): ("failed", ResponseFailedWebhookEvent),
        _create(client, "incomplete"): ("incomplete", ResponseIncompleteWebhookEvent),
    }
    cancelled = _create(slow_client)
    slow_client.responses.cancel(cancelled)
    expected[cancelled] = ("cancelled", ResponseCancelledWebhookEvent)

    got = receiver.wait_for(lambda ds: all(_for(rid, ds) for rid in expected))
    assert len(got) == 4
    for rid, (status, event_class) in expected.items():
        (delivery,) = _for(rid, got)
        event = client.webhooks.unwrap(delivery.body, delivery.headers, secret=SECRET)
        assert isinstance(event, event_class)
        assert event.type == f"response.{status}"
        assert event.data.id == rid
        assert event.id.startswith("evt_")
        assert event.object == "event"
        # The event is sent once the response has ended: a retrieve agrees with it.
        owner = slow_client if rid == cancelled else client
        assert owner.responses.retrieve(rid).status == status
        assert delivery.headers["webhook-id"].startswith("wh_")
        assert delivery.headers["content-type"] == "application/json"
        assert delivery.headers["user-agent"].startswith("OpenAI/")
        assert delivery.headers["webhook-signature"].startswith("v1,")


def test_the_body_has_exactly_openais_fields(fast: SandboxServer, receiver: Receiver) -> None:
    client = _client(fast)
    rid = _create(client)
    (delivery,) = receiver.wait_for(lambda ds: len(ds) == 1)
    body = json.loads(delivery.body)
    assert set(body) == {"id", "object", "created_at", "type", "data"}
    assert body["data"] == {"id": rid}
    assert isinstance(body["created_at"], int)
    done = client.responses.retrieve(rid)
    assert body["created_at"] == done.completed_at  # when the response completed
    assert abs(int(delivery.headers["webhook-timestamp"]) - time.time()) < 60


def test_a_forged_or_altered_delivery_fails_verification(
    fast: SandboxServer, receiver: Receiver
) -> None:
    client = _client(fast)
    _create(client)
    (delivery,) = receiver.wait_for(lambda ds: len(ds) == 1)
    with pytest.raises(openai.InvalidWebhookSignatureError):
        client.webhooks.unwrap(delivery.body, delivery.headers, secret=OTHER_SECRET)
    altered = delivery.body.replace(b"response.completed", b"response.failed")
    with pytest.raises(openai.InvalidWebhookSignatureError):
        client.webhooks.unwrap(altered, delivery.headers, secret=SECRET)
    client.webhooks.unwrap(delivery.body, delivery.headers, secret=SECRET)  # the real one


def test_stats_count_deliveries_and_never_show_the_secret(
    fast: SandboxServer, receiver: Receiver
) -> None:
    client = _client(fast)
    client.responses.create(model="gpt-4o-mini", input="Not in the background.")
    rid = _create(client)
    receiver.wait_for(lambda ds: len(ds) == 1)
    stats = wait_until(
        lambda: admin(fast.url, "/sandbox/stats"), lambda s: s["webhooks"]["pending"] == 0
    )
    hooks = stats["webhooks"]
    # Only the background response is announced: a plain one ends with its request.
    assert hooks["events"] == {"response.completed": 1}
    assert (hooks["sent"], hooks["succeeded"], hooks["retried"]) == (1, 1, 0)
    assert (hooks["dropped"], hooks["duplicated"], hooks["abandoned"]) == (0, 0, 0)
    assert hooks["enabled"] is True
    assert SECRET not in json.dumps(stats)
    assert SECRET not in repr(fast.config)
    assert is_terminal(client.responses.retrieve(rid))


def test_other_sandbox_apis_emit_batch_events_through_the_sender(
    fast: SandboxServer, receiver: Receiver
) -> None:
    sender = fast.app.state.sandbox.webhooks
    webhook_id = sender.emit("batch.completed", {"id": "batch_123"})
    (delivery,) = receiver.wait_for(lambda ds: len(ds) == 1)
    event = _client(fast).webhooks.unwrap(delivery.body, delivery.headers, secret=SECRET)
    assert isinstance(event, BatchCompletedWebhookEvent)
    assert event.data.id == "batch_123"
    assert delivery.headers["webhook-id"] == webhook_id
    with pytest.raises(ValueError, match="unknown webhook event type"):
        sender.emit("batch.finished", {"id": "batch_123"})


def test_a_stalled_receiver_does_not_slow_the_api(fast: SandboxServer, receiver: Receiver) -> None:
    client = _client(fast)
    receiver.hold.clear()  # every delivery now waits
    try:
        first = _create(client)
        wait_until(lambda: admin(fast.url, "/sandbox/stats")["webhooks"], lambda h: h["sent"] >= 1)
        started = time.monotonic()
        for _ in range(5):
            client.responses.retrieve(first)
            _create(client)
        assert time.monotonic() - started < 5.0  # the receiver holds for up to 30 s
    finally:
        receiver.hold.set()
    receiver.wait_for(lambda ds: len(ds) == 6)


def test_a_response_restored_from_a_snapshot_is_still_announced(
    receiver: Receiver, tmp_path: Path
) -> None:
    settings = {"webhook_url": receiver.url, "webhook_secret": SECRET}
    path = str(tmp_path / "sandbox.json")
    config = SandboxConfig(port=0, latency_ms=4000, snapshot_path=path, **settings)
    with SandboxServer(config) as first:
        rid = _create(_client(first))
        done_at = first.app.state.sandbox.store.responses[rid].timeline.done_at
    assert time.time() < done_at, "the machine was too slow to stop before the response ended"
    assert receiver.received() == []
    with SandboxServer(config.replace(port=0)) as second:
        (delivery,) = receiver.wait_for(lambda ds: len(ds) == 1)
        event = _client(second).webhooks.unwrap(delivery.body, delivery.headers, secret=SECRET)
        assert (event.type, event.data.id) == ("response.completed", rid)
        assert delivery.received_at >= done_at
