"""A batch's webhook: the receiver finds runq's batch by the backend's id and makes it
due at the batcher's next tick; an early delivery leaves a mark the batcher reads when
it adopts the batch; replays and batches past waiting change nothing (fakeredis)."""

from __future__ import annotations

import time

import pytest

from runq.runs import keys
from runq.runs.batcher.queue import BatchQueue
from runq.runs.webhooks import WebhookInbox, WebhookReceiver, WebhookVerifier
from tests.unit.test_webhooks import SECRET, Wakes, completed, signed


def batch_event(backend_id: str, kind: str = "batch.completed") -> dict:
    return {**completed(backend_id), "type": kind}


@pytest.fixture
def queue(fake_redis) -> BatchQueue:
    return BatchQueue(fake_redis)


@pytest.fixture
def receiver(fake_redis, store, queue) -> WebhookReceiver:
    return WebhookReceiver(WebhookVerifier(SECRET), WebhookInbox(fake_redis), store, Wakes(),
                           wake_batch=queue.look_now)  # fmt: skip


def created(fake_redis, queue: BatchQueue, local_id: str, backend_id: str) -> bool:
    """A batch the batcher created and adopted, next looked at in ten minutes."""
    later = repr(time.time() + 600)
    record = {"status": "created", "batch_id": backend_id, "next_poll": later}
    fake_redis.hset(keys.batch(local_id), mapping=record)
    return queue.expect_webhook(local_id, backend_id)


@pytest.mark.parametrize("kind", ["batch.completed", "batch.failed", "batch.expired",
                                  "batch.cancelled"])  # fmt: skip
def test_a_batch_that_ended_is_looked_at_the_next_tick(fake_redis, queue, receiver, kind) -> None:
    assert created(fake_redis, queue, "rb_1", "batch_abc") is False
    receipt = receiver.receive(*signed(batch_event("batch_abc", kind)))
    assert (receipt.status, receipt.job_id) == ("woken", "rb_1")
    assert queue.record("rb_1")["next_poll"] == "0"
    assert queue.record("rb_1")["status"] == "created"
    assert receipt.body() == {"status": "woken"}  # the poster learns no id of ours


def test_a_delivery_before_the_batcher_adopted_the_batch_leaves_a_mark(
    fake_redis, queue, receiver
) -> None:
    assert receiver.receive(*signed(batch_event("batch_early"))).status == "unknown"
    assert created(fake_redis, queue, "rb_2", "batch_early") is True  # look at once
    assert fake_redis.get(keys.webhook_batch("batch_early")) == b"rb_2"  # the mark, replaced


def test_a_replayed_or_late_delivery_changes_nothing(fake_redis, queue, receiver) -> None:
    created(fake_redis, queue, "rb_3", "batch_x")
    body, headers = signed(batch_event("batch_x"))
    assert receiver.receive(body, headers).status == "woken"
    assert receiver.receive(body, headers).status == "duplicate"
    # The results are in: a second delivery (a new webhook id) finds nothing to do.
    assert queue.move("rb_3", "created", "results")
    later = signed(batch_event("batch_x"), webhook_id="wh_2")
    assert receiver.receive(*later).status == "not_due"
    assert queue.record("rb_3")["status"] == "results"


def test_without_a_batcher_to_wake_a_batch_event_is_ignored(fake_redis, store) -> None:
    plain = WebhookReceiver(WebhookVerifier(SECRET), WebhookInbox(fake_redis), store, Wakes())
    assert plain.receive(*signed(batch_event("batch_y"))).status == "ignored"
