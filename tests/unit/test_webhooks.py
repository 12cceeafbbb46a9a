"""Webhook mode's core: verification with the real openai client, replay refusal, the
response -> job index, waking the due poll, and the steps' webhook waits (fakeredis)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from runq.errors import ConfigurationError
from runq.runs import keys
from runq.runs.backends.base import RunState, ToolCallRequest
from runq.runs.delays import DelayedSteps, DueStep
from runq.runs.job import Job, JobSpec, JobStatus, Step
from runq.runs.looks import LookCounts
from runq.runs.steps import Steps
from runq.runs.store import JobStore
from runq.runs.wakes import WakeQueue
from runq.runs.webhooks import (
    SEEN_TTL_SECONDS,
    TOLERANCE_SECONDS,
    WebhookInbox,
    WebhookIndex,
    WebhookReceiver,
    WebhookRejected,
    WebhookVerifier,
    check_secret,
)
from tests.unit.conftest import scripted_steps

SECRET = "whsec_" + base64.b64encode(b"a test signing secret, 32 bytes!").decode()


def signed(
    event: dict, *, secret: str = SECRET, webhook_id: str = "wh_1", at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """A delivery signed as Standard Webhooks (and OpenAI) sign one."""
    body = json.dumps(event).encode()
    stamp = str(int(time.time() if at is None else at))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{webhook_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }
    return body, headers


def completed(response_id: str, event_id: str = "evt_1", **data: object) -> dict:
    return {
        "id": event_id,
        "object": "event",
        "created_at": int(time.time()),
        "type": "response.completed",
        "data": {"id": response_id, **data},
    }


class Wakes:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    def __call__(self, job_id: str, token: int) -> None:
        self.sent.append((job_id, token))


@pytest.fixture
def wakes() -> Wakes:
    return Wakes()


@pytest.fixture
def receiver(fake_redis, store, wakes) -> WebhookReceiver:
    return WebhookReceiver(WebhookVerifier(SECRET), WebhookInbox(fake_redis), store, wakes)


def _steps(store, backend, scheduler, **config) -> Steps:
    return scripted_steps(store, backend, scheduler, **config)


def _submit(store: JobStore, **spec) -> Job:
    job = Job.new(JobSpec(input="hello", **spec).validate())
    store.create(job, [], lease_until=time.time() + 60)
    return job


# -- verification ---------------------------------------------------------------------
def test_a_signed_delivery_is_verified() -> None:
    body, headers = signed(completed("resp_1"))
    delivery = WebhookVerifier(SECRET).verify(body, headers)
    assert (delivery.webhook_id, delivery.type, delivery.object_id) == (
        "wh_1",
        "response.completed",
        "resp_1",
    )


def test_a_forged_signature_is_refused_with_401() -> None:
    other = "whsec_" + base64.b64encode(b"somebody else's secret").decode()
    body, headers = signed(completed("resp_1"), secret=other)
    with pytest.raises(WebhookRejected) as refused:
        WebhookVerifier(SECRET).verify(body, headers)
    assert refused.value.status == 401
    assert "signature" in refused.value.reason


def test_a_body_changed_after_signing_is_refused() -> None:
    body, headers = signed(completed("resp_1"))
    with pytest.raises(WebhookRejected) as refused:
        WebhookVerifier(SECRET).verify(body.replace(b"resp_1", b"resp_2"), headers)
    assert refused.value.status == 401


def test_a_stale_timestamp_is_refused_with_401() -> None:
    body, headers = signed(completed("resp_1"), at=time.time() - TOLERANCE_SECONDS - 30)
    with pytest.raises(WebhookRejected) as refused:
        WebhookVerifier(SECRET).verify(body, headers)
    assert refused.value.status == 401
    assert "too old" in refused.value.reason


def test_missing_headers_are_refused_with_400_naming_them() -> None:
    body, headers = signed(completed("resp_1"))
    del headers["webhook-signature"]
    with pytest.raises(WebhookRejected) as refused:
        WebhookVerifier(SECRET).verify(body, headers)
    assert refused.value.status == 400
    assert "webhook-signature" in refused.value.reason


def test_a_signed_body_that_is_no_event_is_refused_with_400() -> None:
    body, headers = signed({"hello": "world"})
    with pytest.raises(WebhookRejected) as refused:
        WebhookVerifier(SECRET).verify(body, headers)
    assert refused.value.status == 400


def test_a_bad_secret_is_a_configuration_error_that_does_not_show_it() -> None:
    with pytest.raises(ConfigurationError, match="OPENAI_WEBHOOK_SECRET") as bad:
        check_secret("whsec_not base64!!")
    assert "not base64!!" not in str(bad.value)
    with pytest.raises(ConfigurationError, match="empty"):
        check_secret("  ")


# -- receiving ------------------------------------------------------------------------
def _waiting_job(store: JobStore, fake_redis, response_id: str = "resp_1") -> Job:
    """A job whose run waits for its webhook, as the start step leaves it."""
    job = _submit(store)
    claim = store.claim(job.id, 30)
    assert claim.job is not None
    claim.job.handle["response_id"] = response_id
    claim.job.move(JobStatus.RUNNING)
    claim.job.due(Step.POLL)
    store.commit(claim.job, [], owner=claim.owner, lease_until=time.time() + 60)
    waiting = store.get(job.id)
    WebhookIndex(fake_redis).expect(response_id, job.id, waiting.token, 600)
    return waiting


def test_a_delivery_wakes_the_due_poll_with_its_token(receiver, store, fake_redis, wakes) -> None:
    job = _waiting_job(store, fake_redis)
    receipt = receiver.receive(*signed(completed("resp_1")))
    assert receipt.status == "woken"
    assert wakes.sent == [(job.id, job.token)]
    assert receipt.body() == {"status": "woken"}  # no job id for the poster


def test_a_replayed_delivery_is_refused_and_wakes_nothing(
    receiver, store, fake_redis, wakes
) -> None:
    _waiting_job(store, fake_redis)
    body, headers = signed(completed("resp_1"))
    assert receiver.receive(body, headers).status == "woken"
    assert receiver.receive(body, headers).status == "duplicate"
    assert len(wakes.sent) == 1
    ttl = fake_redis.ttl(keys.webhook_seen("wh_1"))
    assert 2 * TOLERANCE_SECONDS < ttl <= SEEN_TTL_SECONDS  # outlives the replay window


def test_a_forged_delivery_touches_nothing(receiver, store, fake_redis, wakes) -> None:
    _waiting_job(store, fake_redis)
    before = set(fake_redis.keys("*"))
    body, headers = signed(completed("resp_1"), secret=SECRET[:-4] + "AAA=")
    with pytest.raises(WebhookRejected):
        receiver.receive(body, headers)
    assert set(fake_redis.keys("*")) == before
    assert wakes.sent == []


def test_an_unknown_response_is_acknowledged_and_ignored(receiver, wakes) -> None:
    assert receiver.receive(*signed(completed("resp_elsewhere"))).status == "unknown"
    assert wakes.sent == []


def test_a_batch_event_is_acknowledged_and_ignored(receiver, wakes) -> None:
    event = {**completed("batch_1"), "type": "batch.completed"}
    assert receiver.receive(*signed(event)).status == "ignored"
    assert wakes.sent == []


def test_a_delivery_after_the_job_ended_does_nothing(receiver, store, fake_redis, wakes) -> None:
    job = _waiting_job(store, fake_redis)
    claim = store.claim(job.id, 30)
    assert claim.job is not None
    claim.job.move(JobStatus.SUCCEEDED)
    store.commit(claim.job, [], owner=claim.owner, lease_until=time.time() + 60)
    assert receiver.receive(*signed(completed("resp_1"))).status == "not_due"
    assert wakes.sent == []


def test_a_delivery_for_an_earlier_response_of_the_job_does_nothing(
    receiver, store, fake_redis, wakes
) -> None:
    job = _waiting_job(store, fake_redis, "resp_2")
    fake_redis.set(keys.webhook_response("resp_1"), job.id)
    assert receiver.receive(*signed(completed("resp_1"))).status == "not_due"
    assert wakes.sent == []


def test_the_job_id_in_metadata_finds_a_job_without_the_index(
    receiver, store, fake_redis, wakes
) -> None:
    job = _waiting_job(store, fake_redis)
    fake_redis.delete(keys.webhook_response("resp_1"))
    event = completed("resp_1", metadata={"runq_job_id": job.id})
    assert receiver.receive(*signed(event)).status == "woken"
    assert wakes.sent == [(job.id, job.token)]


def test_a_wake_that_fails_lets_the_senders_retry_in(receiver, store, fake_redis) -> None:
    _waiting_job(store, fake_redis)

    def broker_down(job_id: str, token: int) -> None:
        raise ConnectionError("broker unreachable")

    receiver.wake = broker_down
    body, headers = signed(completed("resp_1"))
    with pytest.raises(ConnectionError):
        receiver.receive(body, headers)
    woken = Wakes()
    receiver.wake = woken
    assert receiver.receive(body, headers).status == "woken"  # the retry is not a replay


# -- the steps in webhook mode --------------------------------------------------------
def test_webhook_mode_schedules_only_the_safety_poll(store, backend, scheduler, fake_redis):
    backend.states = [RunState("queued", handle={"response_id": "resp_1"})]
    steps = _steps(store, backend, scheduler, safety_poll_interval=45.0)
    job = _submit(store, mode="webhook")
    assert steps.run("start", job.id, 0) == "waiting"
    token = store.get(job.id).token
    assert scheduler.scheduled == [("look", job.id, token, 45.0)]
    assert fake_redis.get(keys.webhook_response("resp_1")).decode() == f"{token}|{job.id}"
    assert fake_redis.ttl(keys.webhook_response("resp_1")) > 600


def test_a_worker_in_webhook_mode_waits_so_for_poll_mode_jobs(store, backend, scheduler):
    backend.states = [RunState("queued", handle={"response_id": "resp_1"})]
    steps = _steps(store, backend, scheduler, safety_poll_interval=45.0, webhooks=True)
    job = _submit(store)  # mode "poll", the default
    steps.run("start", job.id, 0)
    assert scheduler.last()[3] == 45.0


def test_other_backends_keep_the_poll_ladder_in_webhook_mode(store, backend, scheduler):
    backend.states = [RunState("queued", handle={"run_id": "run_1", "thread_id": "t"})]
    steps = _steps(store, backend, scheduler, safety_poll_interval=45.0, poll_interval_min=0.2)
    job = _submit(store, mode="webhook", backend="assistants")
    steps.run("start", job.id, 0)
    assert scheduler.last()[3] == pytest.approx(0.2)  # no webhook comes for a run


def test_an_early_delivery_makes_the_poll_due_at_once(
    store, backend, scheduler, fake_redis, receiver, wakes
) -> None:
    """The delivery came before the start step wrote the index: the step sees its mark."""
    assert receiver.receive(*signed(completed("resp_1"))).status == "unknown"
    backend.states = [RunState("queued", handle={"response_id": "resp_1"})]
    steps = _steps(store, backend, scheduler, safety_poll_interval=45.0)
    job = _submit(store, mode="webhook")
    steps.run("start", job.id, 0)
    token = store.get(job.id).token
    assert scheduler.last() == ("poll", job.id, token, 0.0)
    # The mark held the index's place: the index has replaced it.
    assert fake_redis.get(keys.webhook_response("resp_1")) == f"{token}|{job.id}".encode()


def test_woken_poll_duplicates_and_the_safety_poll_apply_once(
    store, backend, scheduler, receiver, wakes
) -> None:
    """A duplicate delivery (new webhook id) and the safety poll find the token moved on;
    the fetch the webhook asked for is not counted as a poll."""
    done = RunState("completed", handle={"response_id": "resp_1"}, output_text="Echo: hello")
    backend.states = [RunState("queued", handle={"response_id": "resp_1"}), done]
    steps = _steps(store, backend, scheduler, safety_poll_interval=45.0)
    job = _submit(store, mode="webhook")
    steps.run("start", job.id, 0)
    safety = scheduler.last()
    receiver.receive(*signed(completed("resp_1"), webhook_id="wh_a"))
    receiver.receive(*signed(completed("resp_1"), webhook_id="wh_b"))  # before either ran
    assert len(wakes.sent) == 2 and wakes.sent[0] == wakes.sent[1]
    assert steps.run("poll", *wakes.sent[0]) == JobStatus.SUCCEEDED
    assert steps.run("poll", *wakes.sent[1]) == "stale"
    assert steps.run(safety[0], safety[1], safety[2]) == "stale"
    ended = store.get(job.id)
    assert ended.status == JobStatus.SUCCEEDED and ended.output_text == "Echo: hello"
    assert ended.polls == 0
    assert backend.calls == ["start", "retrieve"]
    assert len(scheduler.published) == 1
    # A delivery that comes after the end wakes nothing.
    assert receiver.receive(*signed(completed("resp_1"), webhook_id="wh_c")).status == "not_due"


def test_a_safety_poll_of_a_run_still_going_counts_and_waits_again(store, backend, scheduler):
    backend.states = [
        RunState("queued", handle={"response_id": "resp_1"}),
        RunState("in_progress", handle={"response_id": "resp_1"}),
    ]
    steps = _steps(store, backend, scheduler, safety_poll_interval=45.0)
    job = _submit(store, mode="webhook")
    steps.run("start", job.id, 0)
    step, job_id, token, _ = scheduler.last()
    assert steps.run(step, job_id, token) == "waiting"
    # Counted beside the record until the job ends (runs.looks; tests/unit/test_safety_look.py)
    assert LookCounts(store.redis).pending(job.id) == 1
    assert scheduler.last()[3] == 135.0  # it grows (tests/unit/test_webhooks_safety_poll.py)


def test_a_tool_round_waits_for_the_webhook_of_its_new_response(
    store, backend, scheduler, fake_redis
) -> None:
    call = ToolCallRequest("call_1", "add", '{"a": 1, "b": 2}')
    backend.states = [
        RunState("queued", handle={"response_id": "resp_1"}),
        RunState("requires_tools", handle={"response_id": "resp_1"}, tool_calls=[call]),
        RunState("queued", handle={"response_id": "resp_2"}),
    ]
    steps = _steps(store, backend, scheduler, safety_poll_interval=45.0)
    job = _submit(store, mode="webhook", tools=["add"])
    steps.run("start", job.id, 0)
    step, job_id, token, _ = scheduler.last()
    assert steps.run(step, job_id, token) == "tools"
    token = store.get(job.id).token
    assert steps.run("submit_tool_outputs", job.id, token) == "waiting"
    assert scheduler.last()[3] == 45.0
    waiting = store.get(job.id)
    assert fake_redis.get(keys.webhook_response("resp_2")).decode() == f"{waiting.token}|{job.id}"
    assert waiting.polls == 0


def test_waking_drops_the_safety_poll_waiting_in_redis(store, fake_redis) -> None:
    queue = WakeQueue(fake_redis)
    receiver = WebhookReceiver(
        WebhookVerifier(SECRET), WebhookInbox(fake_redis), store, queue.wake_poll
    )
    job = _waiting_job(store, fake_redis)
    delays = DelayedSteps(fake_redis)
    delays.add(job.id, "look", job.token, 60)
    delays.add("job_other", "look", 1, 60)
    assert receiver.receive(*signed(completed("resp_1"))).status == "woken"
    assert [m.decode() for m in fake_redis.zrange(keys.delayed(), 0, -1)] == ["job_other|look|1"]
    assert queue.take(0.1) == DueStep(job.id, "poll", job.token)
    assert queue.pending() == 0


class NoRecordReads:
    """A store that fails the test if the receiver reads a record."""

    def get(self, job_id: str) -> Job:
        raise AssertionError(f"the receiver read the record of {job_id}")


def test_a_pending_wait_is_woken_in_one_call_without_reading_the_record(store, fake_redis):
    """The usual path: the index names the wait's token and its safety look still waits
    in Redis, so the inbox's one call drops the look and pushes the poll."""
    queue = WakeQueue(fake_redis)
    receiver = WebhookReceiver(
        WebhookVerifier(SECRET), WebhookInbox(fake_redis), NoRecordReads(), queue.wake_poll
    )
    job = _waiting_job(store, fake_redis)
    DelayedSteps(fake_redis).add(job.id, "look", job.token, 60)
    receipt = receiver.receive(*signed(completed("resp_1")))
    assert (receipt.status, receipt.job_id) == ("woken", job.id)
    assert fake_redis.zcard(keys.delayed()) == 0
    assert queue.take(0.1) == DueStep(job.id, "poll", job.token)
    # A second delivery (a new webhook id) finds no look left: the record decides.
    with pytest.raises(AssertionError, match="read the record"):
        receiver.receive(*signed(completed("resp_1"), webhook_id="wh_2"))


def test_without_its_safety_look_in_redis_the_record_decides(receiver, store, fake_redis, wakes):
    """The look was taken by a worker that is running it right now: the delivery still
    wakes the poll the record says is due (the look alone might miss the end)."""
    job = _waiting_job(store, fake_redis)
    assert fake_redis.zcard(keys.delayed()) == 0
    assert receiver.receive(*signed(completed("resp_1"))).status == "woken"
    assert wakes.sent == [(job.id, job.token)]


def test_an_index_of_the_older_form_still_finds_its_job(receiver, store, fake_redis, wakes):
    """An index written before the token was in it (`response id -> job id`)."""
    job = _waiting_job(store, fake_redis)
    fake_redis.set(keys.webhook_response("resp_1"), job.id)
    DelayedSteps(fake_redis).add(job.id, "look", job.token, 60)
    assert receiver.receive(*signed(completed("resp_1"))).status == "woken"
    assert wakes.sent == [(job.id, job.token)]


def test_a_wake_for_a_wait_the_job_left_is_a_stale_no_op(store, backend, scheduler, fake_redis):
    """The job moved on while its safety look still waits (a cancel, say): the one-call
    wake pushes the poll of the old token, which does nothing when it runs."""
    backend.states = [RunState("queued", handle={"response_id": "resp_1"})]
    steps = _steps(store, backend, scheduler, safety_poll_interval=45.0)
    job = _submit(store, mode="webhook")
    steps.run("start", job.id, 0)
    step, _, token, _ = scheduler.last()
    DelayedSteps(fake_redis).add(job.id, step, token, 45.0)
    claim = store.claim(job.id, 30)
    assert claim.job is not None
    claim.job.move(JobStatus.CANCELLED)
    store.commit(claim.job, [], owner=claim.owner, lease_until=time.time() + 60)
    queue = WakeQueue(fake_redis)
    receiver = WebhookReceiver(
        WebhookVerifier(SECRET), WebhookInbox(fake_redis), NoRecordReads(), queue.wake_poll
    )
    assert receiver.receive(*signed(completed("resp_1"))).status == "woken"
    woken = queue.take(0.1)
    assert woken == DueStep(job.id, "poll", token)
    assert steps.run(woken.step, woken.job_id, woken.token) == "stale"
    assert store.get(job.id).status == JobStatus.CANCELLED
