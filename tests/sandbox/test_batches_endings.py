"""How a batch ends other than ``completed``: cancelled, expired; its webhooks; a restart.

Each sandbox here is tuned so the ending happens within a second: a batch slow enough
to be caught in progress, a window short enough to expire in.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from batch_helpers import client_of, create, question, results, serve, wait_ended
from openai.types.webhooks import (
    BatchCancelledWebhookEvent,
    BatchCompletedWebhookEvent,
    BatchExpiredWebhookEvent,
    BatchFailedWebhookEvent,
)
from sandbox_helpers import admin, wait_until
from webhook_receiver import Received, Receiver

from runq.sandbox.server.serve import SandboxServer

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
LINES = 20
# At scale 1 a batch validates for 1 s, is in progress for 5 s + 0.1 s a line and finalizes
# for 1 s; these scales keep each test short yet leave a margin to catch a batch running.
QUICK = {"batch_time_scale": 0.01}  # 20 lines: about 0.1 s in all
SLOW = {"batch_time_scale": 0.5}  # 20 lines: 0.5 s validating, 3.5 s in progress
MEDIUM = {"batch_time_scale": 0.2}  # 20 lines: 0.2 s validating, 1.4 s in progress


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as rcv:
        yield rcv


def _hooks(receiver: Receiver) -> dict[str, object]:
    return {"webhook_url": receiver.url, "webhook_secret": SECRET}


@pytest.fixture(scope="module")
def quick(receiver: Receiver) -> Iterator[SandboxServer]:
    with serve(**QUICK, **_hooks(receiver)) as srv:
        yield srv


@pytest.fixture(scope="module")
def slow(receiver: Receiver) -> Iterator[SandboxServer]:
    with serve(**SLOW, **_hooks(receiver)) as srv:
        yield srv


@pytest.fixture(scope="module")
def short_window(receiver: Receiver) -> Iterator[SandboxServer]:
    """Batches expire 0.8 s after creation, about halfway through their 20 lines."""
    with serve(**MEDIUM, batch_window_seconds=0.8, **_hooks(receiver)) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest, receiver: Receiver) -> None:
    for name in ("quick", "slow", "short_window"):
        if name in request.fixturenames:
            admin(request.getfixturevalue(name).url, "/sandbox/reset", "POST")
    receiver.clear()


def _questions(count: int = LINES) -> list[dict[str, object]]:
    return [question(f"q{i}", f"What is {i}+1?") for i in range(count)]


def _event_for(client: openai.OpenAI, receiver: Receiver, batch_id: str) -> object:
    """The one webhook event delivered for ``batch_id``, verified with the secret.

    The receiver also gets the late deliveries of earlier tests' batches (a batch that
    ended after its test did), and a delivery may come twice with the same id (at least
    once): one event means one webhook id among this batch's deliveries."""

    def mine(deliveries: list[Received]) -> list[Received]:
        return [d for d in deliveries if d.event["data"]["id"] == batch_id]

    delivered = mine(receiver.wait_for(lambda ds: bool(mine(ds)), timeout=5))
    ids = {_webhook_id(d) for d in delivered}
    assert len(ids) == 1, f"more than one event for {batch_id}: {ids}"
    return client.webhooks.unwrap(delivered[0].body, delivered[0].headers, secret=SECRET)


def _webhook_id(delivery: Received) -> str:
    return next(v for k, v in delivery.headers.items() if k.lower() == "webhook-id")


def test_a_batch_goes_through_each_status_in_order(slow: SandboxServer) -> None:
    """Polled every 20 ms, each of its 0.5 s phases (or longer) is seen, in order."""
    client = client_of(slow)
    batch = create(client, _questions(1))
    seen = [batch.status]

    def poll() -> str:
        status = client.batches.retrieve(batch.id).status
        if status != seen[-1]:
            seen.append(status)
        return status

    wait_until(poll, lambda status: status == "completed", timeout=10)
    assert seen == ["validating", "in_progress", "finalizing", "completed"]


def test_cancel_in_progress_keeps_partial_results_and_names_the_rest(
    slow: SandboxServer, receiver: Receiver
) -> None:
    client = client_of(slow)
    batch = create(client, _questions())
    wait_until(
        lambda: client.batches.retrieve(batch.id),
        lambda b: b.request_counts is not None and b.request_counts.completed >= 2,
        timeout=5,
    )

    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    assert client.batches.cancel(batch.id).status in ("cancelling", "cancelled")  # idempotent
    done = wait_ended(client, batch.id)

    assert done.status == "cancelled" and done.cancelled_at is not None
    assert done.request_counts is not None
    answered, total = done.request_counts.completed, done.request_counts.total
    assert 2 <= answered < LINES and total == LINES
    assert answered + done.request_counts.failed == LINES
    outputs = results(client, done.output_file_id)
    assert len(outputs) == answered
    skipped = results(client, done.error_file_id)
    assert set(outputs) | set(skipped) == {f"q{i}" for i in range(LINES)}
    assert {row["error"]["code"] for row in skipped.values()} == {"batch_cancelled"}
    assert all(row["response"] is None for row in skipped.values())
    assert isinstance(_event_for(client, receiver, batch.id), BatchCancelledWebhookEvent)
    assert admin(slow.url, "/sandbox/stats")["batches_by_ending"] == {"cancelled": 1}


def test_cancel_while_validating_runs_no_line(slow: SandboxServer) -> None:
    client = client_of(slow)
    batch = create(client, _questions(3))
    assert client.batches.cancel(batch.id).status == "cancelling"
    done = wait_ended(client, batch.id)
    assert done.status == "cancelled"
    assert done.in_progress_at is None
    assert done.output_file_id is None
    assert admin(slow.url, "/sandbox/stats")["responses_created"] == 0


def test_an_ended_batch_cannot_be_cancelled(quick: SandboxServer, receiver: Receiver) -> None:
    client = client_of(quick)
    batch = create(client, _questions(2))
    done = wait_ended(client, batch.id)
    assert done.status == "completed"
    assert isinstance(_event_for(client, receiver, batch.id), BatchCompletedWebhookEvent)
    with pytest.raises(openai.ConflictError, match="status 'completed'"):
        client.batches.cancel(batch.id)


def test_a_failed_batch_is_announced(quick: SandboxServer, receiver: Receiver) -> None:
    client = client_of(quick)
    batch = create(client, ["not json"])
    assert wait_ended(client, batch.id).status == "failed"
    assert isinstance(_event_for(client, receiver, batch.id), BatchFailedWebhookEvent)


def test_a_batch_past_its_window_expires_with_what_it_answered(
    short_window: SandboxServer, receiver: Receiver
) -> None:
    client = client_of(short_window)
    batch = create(client, _questions())
    assert batch.expires_at is not None and batch.expires_at - batch.created_at <= 1
    assert client.batches.retrieve(batch.id).status in ("validating", "in_progress")

    done = wait_ended(client, batch.id)

    assert done.status == "expired" and done.expired_at is not None
    assert done.finalizing_at is None
    assert done.request_counts is not None and done.request_counts.total == LINES
    answered = done.request_counts.completed
    assert 0 < answered < LINES
    assert len(results(client, done.output_file_id)) == answered
    late = results(client, done.error_file_id)
    assert len(late) == LINES - answered == done.request_counts.failed
    assert {row["error"]["code"] for row in late.values()} == {"batch_expired"}
    assert isinstance(_event_for(client, receiver, batch.id), BatchExpiredWebhookEvent)


def test_a_restarted_sandbox_finishes_a_batch_without_answering_a_line_twice(
    tmp_path: Path,
) -> None:
    """The state is saved mid-batch and loaded by a new server, which takes it over."""
    snapshot = {"snapshot_path": str(tmp_path / "state.json"), "snapshot_interval_seconds": 0}
    with serve(**MEDIUM, **snapshot) as first:
        client = client_of(first)
        batch = create(client, _questions())
        wait_until(
            lambda: client.batches.retrieve(batch.id),
            lambda b: b.request_counts is not None and b.request_counts.completed >= 3,
            timeout=5,
        )
    # the first server is gone (its state saved at shutdown); a second one loads it
    with serve(**MEDIUM, **snapshot) as second:
        client = client_of(second)
        before = client.batches.retrieve(batch.id)  # takes the batch over
        assert before.request_counts is not None and before.request_counts.completed >= 3
        done = wait_ended(client, batch.id)
        assert done.status == "completed"
        outputs = results(client, done.output_file_id)  # fails on a custom_id seen twice
        assert set(outputs) == {f"q{i}" for i in range(LINES)}
        stats = admin(second.url, "/sandbox/stats")
        assert stats["batch_lines"] == {"total": LINES, "completed": LINES, "failed": 0}
