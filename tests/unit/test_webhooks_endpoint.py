"""The webhook endpoint over HTTP (the `runq webhooks` app, in process) and the settings
of webhook mode: answers for forged, stale, malformed, oversized and good deliveries."""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from runq.config.settings import load_settings
from runq.errors import ConfigurationError
from runq.producers.webhooks import PATH
from runq.producers.webhooks.app import create_webhooks_app
from runq.producers.webhooks.receiver import webhook_secret
from runq.runs import keys
from runq.runs.webhooks import TOLERANCE_SECONDS, WebhookInbox, WebhookReceiver, WebhookVerifier
from tests.unit.test_webhooks import SECRET, Wakes, _waiting_job, completed, signed


@pytest.fixture
def wakes() -> Wakes:
    return Wakes()


@pytest.fixture
def http(fake_redis, store, wakes) -> TestClient:
    receiver = WebhookReceiver(WebhookVerifier(SECRET), WebhookInbox(fake_redis), store, wakes)
    return TestClient(create_webhooks_app(receiver, max_body_bytes=4096))


def test_a_good_delivery_answers_200_and_wakes_the_job(http, store, fake_redis, wakes) -> None:
    job = _waiting_job(store, fake_redis)
    body, headers = signed(completed("resp_1"))
    answer = http.post(PATH, content=body, headers=headers)
    assert answer.status_code == 200 and answer.json() == {"status": "woken"}
    assert wakes.sent == [(job.id, job.token)]


def test_a_replay_answers_200_so_the_sender_stops_and_wakes_nothing(
    http, store, fake_redis, wakes
) -> None:
    _waiting_job(store, fake_redis)
    body, headers = signed(completed("resp_1"))
    http.post(PATH, content=body, headers=headers)
    again = http.post(PATH, content=body, headers=headers)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    assert len(wakes.sent) == 1


def test_a_forged_delivery_answers_401_and_writes_nothing(http, fake_redis, wakes) -> None:
    body, headers = signed(completed("resp_1"), secret=SECRET[:-4] + "AAA=")
    answer = http.post(PATH, content=body, headers=headers)
    assert answer.status_code == 401
    assert fake_redis.keys("*") == []
    assert wakes.sent == []


def test_a_stale_delivery_answers_401(http, fake_redis) -> None:
    body, headers = signed(completed("resp_1"), at=time.time() - TOLERANCE_SECONDS - 60)
    answer = http.post(PATH, content=body, headers=headers)
    assert answer.status_code == 401 and "too old" in answer.json()["detail"]
    assert fake_redis.exists(keys.webhook_seen("wh_1")) == 0


def test_a_delivery_without_headers_answers_400(http) -> None:
    answer = http.post(PATH, content=b'{"type": "response.completed"}')
    assert answer.status_code == 400
    assert "webhook-id" in answer.json()["detail"]


def test_a_body_over_the_limit_answers_413_unread(http) -> None:
    body, headers = signed(completed("resp_1", padding="x" * 5000))
    answer = http.post(PATH, content=body, headers=headers)
    assert answer.status_code == 413


def test_an_unknown_response_answers_200(http, wakes) -> None:
    answer = http.post(PATH, content=(s := signed(completed("resp_other")))[0], headers=s[1])
    assert answer.status_code == 200 and answer.json() == {"status": "unknown"}
    assert wakes.sent == []


# -- settings ----------------------------------------------------------------------------
def test_webhook_settings_are_read_and_checked(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("RUNQ_MODE", "webhook")
    monkeypatch.setenv("RUNQ_SAFETY_POLL_INTERVAL", "90")
    settings = load_settings()
    assert settings.mode == "webhook" and settings.safety_poll_interval == 90
    assert SECRET not in repr(settings)
    assert webhook_secret(settings) == SECRET


def test_a_safety_poll_shorter_than_the_shortest_poll_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("RUNQ_SAFETY_POLL_INTERVAL", "0.1")
    with pytest.raises(ConfigurationError, match="RUNQ_SAFETY_POLL_INTERVAL must be at least"):
        load_settings()
    monkeypatch.setenv("RUNQ_SAFETY_POLL_INTERVAL", "soon")
    with pytest.raises(ConfigurationError, match="RUNQ_SAFETY_POLL_INTERVAL: must be a number"):
        load_settings()


def test_a_receiver_without_a_secret_says_which_variable_to_set(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_WEBHOOK_SECRET", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_WEBHOOK_SECRET"):
        webhook_secret(load_settings())
