"""The sandbox serves OpenAI's webhook endpoints API, and delivers to what it registers.

The real ``openai`` client drives every route over HTTP (``client.webhooks.create``,
``retrieve``, ``update``, ``list``, ``delete``, ``rotate_secret``, ``test``,
``event_types.list``); real receivers on 127.0.0.1 get the deliveries, which
``client.webhooks.unwrap`` verifies with the secret the API returned.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import typing
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.webhooks import (
    BatchCompletedWebhookEvent,
    EvalRunSucceededWebhookEvent,
    ResponseCompletedWebhookEvent,
    WebhookEndpoint,
    WebhookEndpointWithSecret,
)
from openai.types.webhooks.webhook_create_params import WebhookCreateParams
from sandbox_helpers import admin, wait_until
from webhook_receiver import Received, Receiver

from runq.sandbox.engine import webhook_endpoints, webhooks
from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.engine.faults import FaultInjector
from runq.sandbox.engine.stats import Stats
from runq.sandbox.engine.webhook_endpoints import EndpointRegistry
from runq.sandbox.engine.webhook_event_types import sample_data
from runq.sandbox.engine.webhook_http import why_unreachable
from runq.sandbox.engine.webhooks import WebhookSender
from runq.sandbox.server.serve import SandboxServer

RESPONSE_TYPES = ["response.completed", "response.failed", "response.incomplete"]
BATCH_TYPES = ["batch.completed", "batch.failed", "batch.expired", "batch.cancelled"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rcv:
        yield rcv


@pytest.fixture
def other_receiver() -> Iterator[Receiver]:
    with Receiver() as rcv:
        yield rcv


def _closed_port_url() -> str:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"


def _register(
    client: openai.OpenAI, url: str, event_types: list[str] | None = None, name: str = "hooks"
) -> WebhookEndpointWithSecret:
    types: Any = event_types or RESPONSE_TYPES
    return client.webhooks.create(url=url, name=name, event_types=types)


def _hooks(server: SandboxServer) -> dict[str, Any]:
    hooks: dict[str, Any] = admin(server.url, "/sandbox/stats")["webhooks"]
    return hooks


def _settled(server: SandboxServer) -> dict[str, Any]:
    """The delivery counters once nothing is pending."""
    return wait_until(lambda: _hooks(server), lambda h: h["pending"] == 0)


def _background(client: openai.OpenAI, latency_ms: int | None = None) -> str:
    meta = {"sandbox_latency_ms": str(latency_ms)} if latency_ms is not None else None
    return client.responses.create(
        model="gpt-4o-mini", input="Say hello.", background=True, metadata=meta
    ).id


def _delivered(client: openai.OpenAI, receiver: Receiver) -> Received:
    """End one background response and return its delivery to ``receiver``."""
    rid = _background(client)
    got = receiver.wait_for(lambda ds: any(d.event["data"]["id"] == rid for d in ds))
    (delivery,) = [d for d in got if d.event["data"]["id"] == rid]
    return delivery


def _verifies(client: openai.OpenAI, delivery: Received, secret: str) -> bool:
    try:
        client.webhooks.unwrap(delivery.body, delivery.headers, secret=secret)
    except openai.InvalidWebhookSignatureError:
        return False
    return True


def _literals(annotation: Any) -> set[str]:
    """Every string of the ``Literal`` types nested in ``annotation``."""
    found: set[str] = set()
    for arg in typing.get_args(annotation):
        found |= {arg} if isinstance(arg, str) else _literals(arg)
    return found


# -- the routes -------------------------------------------------------------------------


def test_create_retrieve_update_and_delete_with_the_real_client(
    client: openai.OpenAI, server: SandboxServer, receiver: Receiver, monkeypatch: Any
) -> None:
    repeated = ["response.completed", "batch.failed", "response.completed"]
    created = _register(client, receiver.url, repeated, name="runq receiver")
    assert isinstance(created, WebhookEndpointWithSecret)
    assert created.id.startswith("whe_")
    assert created.object == "webhook_endpoint"
    assert (created.url, created.name) == (receiver.url, "runq receiver")
    assert created.event_types == ["response.completed", "batch.failed"]  # repeats collapsed
    assert created.updated_at == created.created_at
    assert created.signing_secret.startswith("whsec_")
    assert len(base64.b64decode(created.signing_secret[6:])) == 32

    got = client.webhooks.retrieve(created.id)
    assert isinstance(got, WebhookEndpoint)
    assert "signing_secret" not in got.to_dict()  # the secret is shown at creation only
    assert got.signing_secret_hint == created.signing_secret_hint
    hint = got.signing_secret_hint or ""
    assert hint.startswith("whsec_") and "..." in hint
    assert len(hint) <= len("whsec_abcd...wxyz")
    assert created.signing_secret[6:].rstrip("=") not in hint

    reordered: Any = ["batch.failed", "response.completed"]
    same = client.webhooks.update(created.id, name="runq receiver", event_types=reordered)
    assert same.updated_at == created.updated_at  # nothing changed
    registry = server.app.state.sandbox.webhook_endpoints
    monkeypatch.setattr(registry, "clock", lambda: time.time() + 100)
    renamed = client.webhooks.update(created.id, name="renamed")
    assert renamed.name == "renamed"
    assert (renamed.url, renamed.event_types) == (created.url, created.event_types)
    assert renamed.updated_at is not None and renamed.updated_at >= created.created_at + 100
    assert client.webhooks.retrieve(created.id).name == "renamed"

    removed = client.webhooks.delete(created.id)
    assert (removed.id, removed.deleted, removed.object) == (
        created.id,
        True,
        "webhook_endpoint.deleted",
    )
    with pytest.raises(openai.NotFoundError):
        client.webhooks.retrieve(created.id)


def test_list_is_newest_first_with_cursor_pages(client: openai.OpenAI, receiver: Receiver) -> None:
    ids = [_register(client, receiver.url, name=f"hook {n}").id for n in range(5)]
    newest_first = ids[::-1]

    raw = client.webhooks.with_raw_response.list(limit=2).http_response.json()
    assert raw["object"] == "list"
    assert [e["id"] for e in raw["data"]] == newest_first[:2]
    assert (raw["first_id"], raw["last_id"], raw["has_more"]) == (*newest_first[:2], True)

    second = client.webhooks.list(limit=2, after=newest_first[1])
    assert [e.id for e in second.data] == newest_first[2:4]
    last = client.webhooks.list(limit=2, after=newest_first[3])
    assert [e.id for e in last.data] == newest_first[4:] and last.has_more is False

    assert [e.id for e in client.webhooks.list(limit=2)] == newest_first  # auto-pagination


def test_event_types_are_every_type_the_client_may_subscribe_to(client: openai.OpenAI) -> None:
    listed = client.webhooks.event_types.list()
    assert listed.object == "list"
    hints = typing.get_type_hints(WebhookCreateParams, include_extras=True)
    allowed = _literals(hints["event_types"])
    assert "response.completed" in allowed and "eval.run.succeeded" in allowed
    assert sorted(listed.data) == sorted(allowed)
    assert set(webhooks.EVENT_TYPES) <= allowed  # what the sandbox sends can be subscribed to
    for event_type in listed.data:  # each has a sample for `test`, about an object with an id
        sample = sample_data(event_type)
        assert sample.get("id") or sample.get("call_id")
    # Types the sandbox never sends may still be subscribed to.
    quiet = _register(client, "https://hooks.example.test/openai", ["eval.run.failed"])
    assert quiet.event_types == ["eval.run.failed"]


# -- deliveries -------------------------------------------------------------------------


def test_a_background_response_reaches_the_endpoints_subscribed_to_it(
    client: openai.OpenAI, server: SandboxServer, receiver: Receiver, other_receiver: Receiver
) -> None:
    endpoint = _register(client, receiver.url, RESPONSE_TYPES)
    _register(client, other_receiver.url, BATCH_TYPES)
    rid = _background(client)
    (delivery,) = receiver.wait_for(lambda ds: len(ds) == 1)
    event = client.webhooks.unwrap(delivery.body, delivery.headers, secret=endpoint.signing_secret)
    assert isinstance(event, ResponseCompletedWebhookEvent)
    assert event.data.id == rid
    assert client.responses.retrieve(rid).status == "completed"
    hooks = _settled(server)
    assert other_receiver.received() == []  # subscribed to batch events only
    assert (hooks["sent"], hooks["succeeded"], hooks["endpoints"]) == (1, 1, 2)
    assert hooks["enabled"] is True
    stats = json.dumps(admin(server.url, "/sandbox/stats"))
    assert endpoint.signing_secret not in stats
    record = server.app.state.sandbox.webhook_endpoints.find(endpoint.id)
    assert endpoint.signing_secret not in repr(record)


def test_a_batch_event_reaches_only_the_endpoint_subscribed_to_batches(
    client: openai.OpenAI, server: SandboxServer, receiver: Receiver, other_receiver: Receiver
) -> None:
    _register(client, receiver.url, RESPONSE_TYPES)
    batches = _register(client, other_receiver.url, BATCH_TYPES)
    server.app.state.sandbox.webhooks.emit("batch.completed", {"id": "batch_123"})
    (delivery,) = other_receiver.wait_for(lambda ds: len(ds) == 1)
    event = client.webhooks.unwrap(delivery.body, delivery.headers, secret=batches.signing_secret)
    assert isinstance(event, BatchCompletedWebhookEvent)
    assert event.data.id == "batch_123"
    assert _settled(server)["sent"] == 1
    assert receiver.received() == []


def test_an_endpoint_registered_while_a_response_runs_hears_its_end(
    client: openai.OpenAI, server: SandboxServer, receiver: Receiver
) -> None:
    rid = _background(client, latency_ms=1500)  # no endpoint yet: nothing is scheduled
    endpoint = _register(client, receiver.url)
    done_at = server.app.state.sandbox.store.responses[rid].timeline.done_at
    assert time.time() < done_at, "the machine was too slow to register before the end"
    (delivery,) = receiver.wait_for(lambda ds: len(ds) == 1)
    event = client.webhooks.unwrap(delivery.body, delivery.headers, secret=endpoint.signing_secret)
    assert (event.type, event.data.id) == ("response.completed", rid)


def test_rotation_keeping_the_old_secret_signs_with_both_until_the_grace_ends(
    client: openai.OpenAI, server: SandboxServer, receiver: Receiver, monkeypatch: Any
) -> None:
    old = _register(client, receiver.url)
    rotated = client.webhooks.rotate_secret(old.id, keep_old_secret_active_for_24_hours=True)
    assert isinstance(rotated, WebhookEndpointWithSecret)
    assert rotated.signing_secret != old.signing_secret
    assert rotated.signing_secret_hint != old.signing_secret_hint
    assert rotated.updated_at is not None and rotated.updated_at >= old.created_at

    during = _delivered(client, receiver)
    assert len(during.headers["webhook-signature"].split()) == 2
    assert _verifies(client, during, rotated.signing_secret)
    assert _verifies(client, during, old.signing_secret)

    registry = server.app.state.sandbox.webhook_endpoints
    grace = webhook_endpoints.KEEP_OLD_SECRET_SECONDS
    monkeypatch.setattr(registry, "clock", lambda: time.time() + grace + 1)  # a day later
    after = _delivered(client, receiver)
    assert len(after.headers["webhook-signature"].split()) == 1
    assert _verifies(client, after, rotated.signing_secret)
    assert not _verifies(client, after, old.signing_secret)


def test_rotation_without_keeping_the_old_secret_stops_it_at_once(
    client: openai.OpenAI, receiver: Receiver
) -> None:
    old = _register(client, receiver.url)
    rotated = client.webhooks.rotate_secret(old.id)
    delivery = _delivered(client, receiver)
    assert _verifies(client, delivery, rotated.signing_secret)
    assert not _verifies(client, delivery, old.signing_secret)
    assert "signing_secret" not in client.webhooks.retrieve(old.id).to_dict()


def test_after_an_update_deliveries_follow_the_new_url_and_types(
    client: openai.OpenAI, server: SandboxServer, receiver: Receiver, other_receiver: Receiver
) -> None:
    endpoint = _register(client, receiver.url)
    client.webhooks.update(endpoint.id, url=other_receiver.url)
    delivery = _delivered(client, other_receiver)
    assert _verifies(client, delivery, endpoint.signing_secret)
    _settled(server)
    assert receiver.received() == []  # nothing went to the old URL

    client.webhooks.update(endpoint.id, event_types=["batch.completed"])
    _register(client, receiver.url)  # a witness still subscribed to responses
    _delivered(client, receiver)
    assert _settled(server)["sent"] == 2
    assert len(other_receiver.received()) == 1  # the updated endpoint heard nothing more


def test_a_deleted_endpoint_gets_no_more_deliveries(
    client: openai.OpenAI, server: SandboxServer, receiver: Receiver, other_receiver: Receiver
) -> None:
    _register(client, receiver.url)
    doomed = _register(client, other_receiver.url)
    client.webhooks.delete(doomed.id)
    _delivered(client, receiver)  # the endpoint still registered hears the end
    hooks = _settled(server)
    assert other_receiver.received() == []
    assert (hooks["sent"], hooks["endpoints"]) == (1, 1)


def test_a_delivery_queued_before_its_endpoint_is_deleted_is_discarded(
    receiver: Receiver,
) -> None:
    registry = EndpointRegistry()
    dice = FaultInjector({"webhook_delay": 1.0}, 0)
    sender = WebhookSender(None, None, dice, Stats(), delay_seconds=0.3, endpoints=registry)
    try:
        endpoint = registry.create(receiver.url, "hooks", ["batch.completed"])
        assert sender.enabled
        assert sender.emit("batch.completed", {"id": "batch_1"}) is not None
        registry.delete(endpoint.id)
        counts = wait_until(sender.counts, lambda c: c["pending"] == 0)
        assert (counts["abandoned"], counts["sent"], counts["endpoints"]) == (1, 0, 0)
        assert receiver.received() == []
        assert not sender.enabled
    finally:
        sender.close()


def test_the_command_line_endpoint_and_a_registered_one_both_get_each_event(
    receiver: Receiver, other_receiver: Receiver
) -> None:
    cli_secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    config = SandboxConfig(
        port=0, latency_ms=100, webhook_url=receiver.url, webhook_secret=cli_secret
    )
    with SandboxServer(config) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=10)
        endpoint = _register(client, other_receiver.url)
        rid = _background(client)
        (to_cli,) = receiver.wait_for(lambda ds: len(ds) == 1)
        (to_endpoint,) = other_receiver.wait_for(lambda ds: len(ds) == 1)
        assert to_cli.body == to_endpoint.body  # one event, two deliveries
        assert to_cli.event["data"]["id"] == rid
        assert to_cli.headers["webhook-id"] == to_endpoint.headers["webhook-id"]
        assert _verifies(client, to_cli, cli_secret)
        assert not _verifies(client, to_cli, endpoint.signing_secret)
        assert _verifies(client, to_endpoint, endpoint.signing_secret)
        assert not _verifies(client, to_endpoint, cli_secret)
        hooks = wait_until(lambda: _hooks(srv), lambda h: h["pending"] == 0)
        assert (hooks["sent"], hooks["succeeded"], hooks["events"]) == (
            2,
            2,
            {"response.completed": 1},
        )


# -- test deliveries --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "event_class", "prefix"),
    [
        ("response.completed", ResponseCompletedWebhookEvent, "resp_"),
        ("batch.completed", BatchCompletedWebhookEvent, "batch_"),
        ("eval.run.succeeded", EvalRunSucceededWebhookEvent, "evalrun_"),
    ],
)
def test_a_test_delivery_is_signed_sent_once_and_answers_the_status(
    client: openai.OpenAI,
    server: SandboxServer,
    receiver: Receiver,
    event_type: str,
    event_class: type,
    prefix: str,
) -> None:
    endpoint = _register(client, receiver.url, ["batch.failed"])  # test ignores subscriptions
    result = client.webhooks.test(endpoint.id, event_type=typing.cast(Any, event_type))
    assert (result.object, result.success) == ("webhook_endpoint.test", True)
    assert result.status_code == 200
    assert (result.webhook_endpoint_id, result.event_type) == (endpoint.id, event_type)
    (delivery,) = receiver.received()  # sent before the answer
    event = client.webhooks.unwrap(delivery.body, delivery.headers, secret=endpoint.signing_secret)
    assert isinstance(event, event_class)
    assert event.data.id.startswith(prefix)
    hooks = _hooks(server)
    assert (hooks["sent"], hooks["events"]) == (0, {})  # not a real event


def test_a_test_delivery_reports_a_failing_receivers_status(client: openai.OpenAI) -> None:
    with Receiver(default_status=500) as failing:
        endpoint = _register(client, failing.url)
        result = client.webhooks.test(endpoint.id, event_type="response.failed")
        assert result.status_code == 500
        assert len(failing.received()) == 1  # one attempt, no retry


def test_a_test_delivery_nobody_receives_is_a_clear_400(client: openai.OpenAI) -> None:
    endpoint = _register(client, _closed_port_url())
    with pytest.raises(openai.BadRequestError) as caught:
        client.webhooks.test(endpoint.id, event_type="response.completed")
    assert caught.value.status_code == 400
    assert "connection refused" in caught.value.message
    assert caught.value.code == "webhook_endpoint_unreachable"
    assert "timed out" in why_unreachable(TimeoutError())
    assert "resolved" in why_unreachable(socket.gaierror())


# -- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"url": "http://hooks.example.test/openai"}, "url", "https"),
        ({"url": "ftp://127.0.0.1/hooks"}, "url", "https://"),
        ({"url": None}, "url", "Missing required parameter"),
        ({"name": None}, "name", "Missing required parameter"),
        ({"name": "  "}, "name", "non-empty"),
        ({"event_types": []}, "event_types", "at least one"),
        ({"event_types": "response.completed"}, "event_types", "array"),
        (
            {"event_types": ["response.completed", "response.finished"]},
            "event_types[1]",
            "'response.finished'",
        ),
        ({"colour": "blue"}, "colour", "Unknown parameter"),
    ],
)
def test_a_bad_create_is_a_400_naming_the_parameter(
    client: openai.OpenAI, body: dict[str, Any], param: str, words: str
) -> None:
    given = {"url": "https://hooks.example.test/openai", "name": "hooks", **body}
    given = {k: v for k, v in given.items() if v is not None}
    given.setdefault("event_types", ["response.completed"])
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/webhook_endpoints", body=given, cast_to=WebhookEndpointWithSecret)
    assert caught.value.param == param
    assert words in caught.value.message
    assert list(client.webhooks.list()) == []


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/hooks", "http://localhost:9/hooks", "http://[::1]:9/hooks"]
)
def test_plain_http_is_allowed_for_loopback_hosts(client: openai.OpenAI, url: str) -> None:
    assert _register(client, url).url == url


def test_a_bad_update_or_test_is_refused_and_changes_nothing(client: openai.OpenAI) -> None:
    endpoint = _register(client, "https://hooks.example.test/openai")
    with pytest.raises(openai.BadRequestError) as caught:
        client.webhooks.update(endpoint.id, url="http://hooks.example.test/openai")
    assert caught.value.param == "url"
    with pytest.raises(openai.BadRequestError) as caught:
        client.webhooks.test(endpoint.id, event_type=typing.cast(Any, "response.finished"))
    assert caught.value.param == "event_type"
    assert client.webhooks.retrieve(endpoint.id).url == endpoint.url


def test_an_unknown_endpoint_is_a_404_on_every_route(client: openai.OpenAI) -> None:
    calls = [
        lambda: client.webhooks.retrieve("whe_missing"),
        lambda: client.webhooks.update("whe_missing", name="x"),
        lambda: client.webhooks.delete("whe_missing"),
        lambda: client.webhooks.rotate_secret("whe_missing"),
        lambda: client.webhooks.test("whe_missing", event_type="response.completed"),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert "whe_missing" in caught.value.message
        assert caught.value.code == "not_found"


def test_a_reset_forgets_every_endpoint(
    client: openai.OpenAI, server: SandboxServer, receiver: Receiver
) -> None:
    endpoint = _register(client, receiver.url)
    assert _hooks(server)["endpoints"] == 1
    admin(server.url, "/sandbox/reset", "POST")
    assert list(client.webhooks.list()) == []
    with pytest.raises(openai.NotFoundError):
        client.webhooks.retrieve(endpoint.id)
    hooks = _hooks(server)
    assert (hooks["endpoints"], hooks["enabled"]) == (0, False)
