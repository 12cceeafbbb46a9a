"""Provider webhooks: a delivery verified, mapped to its job, and the job's next step woken.

OpenAI posts `response.completed` (`failed`, `cancelled`, `incomplete`) when a background
response ends, signed per the Standard Webhooks spec. In webhook mode a job waits for
that delivery instead of polling on the short ladder; a safety poll at a long interval
(`RUNQ_SAFETY_POLL_INTERVAL`) stays, so a lost delivery delays a job and never loses it.

The parts, each small, so the receiver is tested without a server and the worker's side
without a receiver:

- `WebhookVerifier` checks a delivery with the real `openai` client's
  `webhooks.verify_signature(body, headers, secret=...)`: the HMAC signature over
  `id.timestamp.body` and the timestamp within 5 minutes. Missing headers or a body that
  is not an event answer 400; a bad signature or a stale timestamp 401.
- `WebhookIndex` is the worker's side: when a run starts to wait in webhook mode the step
  records `response id -> token|job id` (with a TTL), and learns whether a delivery for
  that response already came (then it polls at once; see "early deliveries" below).
- `WebhookInbox` is the receiver's side, one Lua call (`webhook_receive.lua`): the
  delivery's `webhook-id` is remembered with `SET NX` for longer than the signature's
  tolerance, so a replay inside the window is refused, and one outside it fails the
  timestamp check; then the response id is looked up, and when the wait it was indexed
  with still has its safety look in `runq:delayed`, the look is dropped and the poll
  pushed to the wake queue in the same call. That is a delivery's usual path: one round
  trip to Redis, no record read.
- `WebhookReceiver` puts them together. When the inbox could not tell (the safety look
  is being run right now, the index is of an older form, the job moved on), it reads the
  record: if a poll of that very response is due, it sends that poll now, with the
  record's token, and drops the safety look that waits in `runq:delayed`.

Why waking is safe however often it happens: the woken poll carries the token of the
step due, and a step acts only if the record's step and token are still its own. A
duplicate delivery, one that arrives after a (safety) poll already saw the end, or the
safety poll that comes after a woken one, each find the token moved on and do nothing.

Early deliveries: the index is written just after the step commits the wait, so a
delivery can come first (a very short run). The receiver then writes `early` where the
index goes, and the step writes the index with `SET ... GET`, which answers what was
there. Redis orders the two, so one side always sees the other: either the receiver
finds the index and wakes the job, or the step finds the mark and polls at once.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from runq.errors import ConfigurationError, JobNotFoundError, RunqError
from runq.runs import keys, lua
from runq.runs.job import Step
from runq.runs.replies import text

if TYPE_CHECKING:
    import redis

    from runq.runs.store import JobStore

log = structlog.get_logger("runq.webhooks")

SECRET_VAR = "OPENAI_WEBHOOK_SECRET"
TOLERANCE_SECONDS = 300  # the openai client's own replay window (`verify_signature`)
# A delivery id is remembered past the whole window a timestamp may be accepted in
# (5 minutes either side of the receipt), with a margin.
SEEN_TTL_SECONDS = 2 * TOLERANCE_SECONDS + 300
EARLY_TTL_SECONDS = 120  # a step writes its index milliseconds after its run is created
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
MAX_WEBHOOK_ID = 200
# Events of a background response, and of a batch; the rest are acknowledged and ignored.
RESPONSE_EVENTS = frozenset(
    {"response.completed", "response.failed", "response.cancelled", "response.incomplete"}
)
BATCH_EVENTS = frozenset({"batch.completed", "batch.failed", "batch.expired", "batch.cancelled"})


class WebhookRejected(RunqError):
    """A delivery refused before anything was touched: `status` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: its `webhook-id`, event type, the object it is about (a
    response id for `response.*`), and a job id when the payload carried one in
    `data.metadata.runq_job_id` (a server that sends the whole response does)."""

    webhook_id: str
    type: str
    object_id: str
    job_hint: str | None = None


def check_secret(secret: str) -> str:
    """A usable signing secret: `whsec_` and base64 (as OpenAI gives it), or plain text."""
    if not secret or not secret.strip():
        raise ConfigurationError(f"{SECRET_VAR} is empty: set it to the endpoint's signing secret")
    if secret.startswith("whsec_"):
        try:
            base64.b64decode(secret[6:], validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError(
                f"{SECRET_VAR} starts with whsec_ but the rest is not base64; copy the "
                "secret exactly as the dashboard shows it"
            ) from None
    return secret


class WebhookVerifier:
    """Checks signature and timestamp with the `openai` client (no request is ever sent).

    `reload`, when given, reads the secret again (from its file): a delivery whose
    signature does not match makes the verifier read it, at most once every
    `RELOAD_SECONDS`, and check again with a secret that changed. So a receiver whose
    secret was rotated (`runq webhooks rotate`) takes the new one without a restart,
    and forged deliveries cannot make it read the file more often than that.
    """

    RELOAD_SECONDS = 5.0

    def __init__(self, secret: str, reload: Callable[[], str] | None = None) -> None:
        self._secret = check_secret(secret)
        self._reload = reload
        self._reloaded_at = float("-inf")
        self._reloading = threading.Lock()
        from openai import OpenAI

        # The client only verifies: no request goes out, so no key is needed or sent.
        self._client = OpenAI(api_key="unused-webhook-verification-only", max_retries=0)

    def verify(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        """The delivery, or `WebhookRejected` (400 malformed, 401 forged or stale)."""
        from openai import InvalidWebhookSignatureError

        lowered = {k.lower(): v for k, v in headers.items()}
        missing = [name for name in HEADERS if not lowered.get(name)]
        if missing:
            raise WebhookRejected(400, "missing header(s): " + ", ".join(missing))
        webhook_id = lowered["webhook-id"]
        if len(webhook_id) > MAX_WEBHOOK_ID:
            raise WebhookRejected(400, f"webhook-id is longer than {MAX_WEBHOOK_ID} characters")
        used = self._secret
        try:
            self._check(body, lowered, used)
        except InvalidWebhookSignatureError as exc:
            if not self._secret_changed(used):
                # The library's reason: a signature that does not match, or a timestamp
                # too old / too new / not a number. Nothing of the secret is in it.
                raise WebhookRejected(401, str(exc)) from None
            try:
                self._check(body, lowered, self._secret)
            except InvalidWebhookSignatureError as again:
                raise WebhookRejected(401, str(again)) from None
        return _delivery(webhook_id, body)

    def _check(self, body: bytes, headers: Mapping[str, str], secret: str) -> None:
        # Only the check: `unwrap` would also build the library's typed event, which
        # nothing here reads (`_delivery` takes the three fields it needs).
        self._client.webhooks.verify_signature(body, headers, secret=secret)

    def _secret_changed(self, used: str) -> bool:
        """Is there a newer secret than `used`: read by a concurrent delivery meanwhile,
        or read now from the file (when allowed)? Deliveries that fail together after a
        rotation wait for one read, and all check again with its secret."""
        if self._reload is None:
            return False
        with self._reloading:
            if self._secret != used:
                return True
            now = time.monotonic()
            if now - self._reloaded_at < self.RELOAD_SECONDS:
                return False
            self._reloaded_at = now
            try:
                fresh = check_secret(self._reload())
            except RunqError as err:  # a file being replaced, emptied: keep the one we have
                log.warning("webhook.secret_unreadable", error=str(err))
                return False
            if fresh == self._secret:
                return False
            self._secret = fresh
        log.info("webhook.secret_reloaded")
        return True


def _delivery(webhook_id: str, body: bytes) -> Delivery:
    try:
        event = json.loads(body)
    except ValueError:
        raise WebhookRejected(400, "the body is not JSON") from None
    data = event.get("data") if isinstance(event, dict) else None
    if not isinstance(data, dict) or not isinstance(event.get("type"), str):
        raise WebhookRejected(400, "the event needs a `type` and a `data` object")
    object_id = data.get("id")
    if not isinstance(object_id, str) or not object_id:
        raise WebhookRejected(400, "the event's `data` needs an `id`")
    metadata = data.get("metadata")
    hint = metadata.get("runq_job_id") if isinstance(metadata, dict) else None
    return Delivery(webhook_id, event["type"], object_id, hint if isinstance(hint, str) else None)


EARLY = "early"
"""What the receiver writes where an index is still to come (`webhook_receive.lua`)."""


def index_and_take_early(client: redis.Redis, key: str, value: str, ttl: float) -> bool:
    """Write an index entry; True if a delivery came before it (its early mark was there).

    One `SET ... GET`: the write and the look at what it replaced are one command, so a
    delivery is seen either by the receiver's lookup or here, never by neither."""
    previous = client.set(key, value, ex=max(1, int(ttl)), get=True)
    return previous is not None and text(previous) == EARLY


class WebhookIndex:
    """The worker's side: which job a response belongs to, written when its wait starts."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def expect(self, response_id: str, job_id: str, token: int, ttl: float) -> bool:
        """Record that `job_id` waits for `response_id` in the wait committed with `token`
        (so the receiver can wake that wait without reading the record); True if the
        response's delivery already came."""
        return index_and_take_early(
            self.redis, keys.webhook_response(response_id), f"{token}|{job_id}", ttl
        )


class WebhookInbox:
    """The receiver's side in Redis: replays refused, response ids looked up, and a
    pending wait woken, in one call."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._receive = lua.register(client, "webhook_receive")

    def take(self, delivery: Delivery) -> tuple[str, str | None]:
        """`("duplicate", None)`, `("woken", job_id)` (its poll is pushed), `("job",
        job_id)` (the caller decides from the record) or `("early", None)`: a response's
        delivery, or a batch's (then the id found is runq's own batch id, never woken)."""
        batch = delivery.type in BATCH_EVENTS
        index = (keys.webhook_batch if batch else keys.webhook_response)(delivery.object_id)
        reply = self._receive(
            keys=[keys.webhook_seen(delivery.webhook_id), index, keys.wakes(), keys.delayed()],
            args=[SEEN_TTL_SECONDS, EARLY_TTL_SECONDS, "0" if batch else "1"],
        )  # fmt: skip
        kind = text(reply[0])
        return kind, (text(reply[1]) if len(reply) > 1 else None)

    def forget(self, delivery: Delivery) -> None:
        """Let the sender's retry in again: taking the delivery in failed half-way."""
        self.redis.delete(keys.webhook_seen(delivery.webhook_id))


@dataclass(frozen=True)
class Receipt:
    """What the receiver did with a delivery (the HTTP answer is 200 for all of them)."""

    status: str  # woken, duplicate, unknown, not_due, ignored
    job_id: str | None = None  # or, for a batch's delivery, runq's batch id

    def body(self) -> dict[str, Any]:
        return {"status": self.status}  # never the job id: the poster is no tenant


class WebhookReceiver:
    """Verify, dedupe, map, wake: what both HTTP endpoints (gateway, `runq webhooks`) run.

    `wake(job_id, token)` makes the job's poll due now and drops the safety look of the
    same wait (`WakeQueue.wake_poll`).
    `wake_batch(batch_id)` makes the batcher look at runq's batch `batch_id` at its next
    tick instead of at its poll interval; it returns False when that batch no longer
    waits for the backend (its results are in, or it is gone).
    """

    def __init__(
        self,
        verifier: WebhookVerifier,
        inbox: WebhookInbox,
        store: JobStore,
        wake: Callable[[str, int], None],
        wake_batch: Callable[[str], bool] | None = None,
    ) -> None:
        self.verifier = verifier
        self.inbox = inbox
        self.store = store
        self.wake = wake
        self.wake_batch = wake_batch

    def receive(self, body: bytes, headers: Mapping[str, str]) -> Receipt:
        """Take one delivery in; raises `WebhookRejected` for a forged or stale one."""
        delivery = self.verifier.verify(body, headers)
        batch = delivery.type in BATCH_EVENTS and self.wake_batch is not None
        if delivery.type not in RESPONSE_EVENTS and not batch:
            log.debug("webhook.ignored", type=delivery.type, object_id=delivery.object_id)
            return Receipt("ignored")
        kind, job_id = self.inbox.take(delivery)
        if kind == "duplicate":
            log.info("webhook.replay_refused", webhook_id=delivery.webhook_id,
                     object_id=delivery.object_id)  # fmt: skip
            return Receipt("duplicate")
        try:
            if batch:
                return self._wake_batch(delivery, job_id)
            if kind == "woken" and job_id is not None:
                return _woken(delivery, job_id)
            job_id = job_id or delivery.job_hint
            if job_id is None:
                log.debug("webhook.unknown_response", response_id=delivery.object_id)
                return Receipt("unknown")
            return self._wake(delivery, job_id)
        except BaseException:
            self.inbox.forget(delivery)  # the sender retries a non-2xx; let it in
            raise

    def _wake_batch(self, delivery: Delivery, batch_id: str | None) -> Receipt:
        """A batch ended: the batcher fetches its results at its next tick (a few
        seconds) instead of at its next look (`RUNQ_BATCH_POLL_INTERVAL`). Before the
        batcher adopted the batch, the early mark makes it look at once when it does."""
        assert self.wake_batch is not None
        if batch_id is None:
            log.debug("webhook.batch_early", batch_id=delivery.object_id)
            return Receipt("unknown")
        if not self.wake_batch(batch_id):
            log.debug("webhook.batch_not_due", batch=batch_id, batch_id=delivery.object_id)
            return Receipt("not_due", batch_id)
        log.info("webhook.batch_woken", batch=batch_id, batch_id=delivery.object_id,
                 type=delivery.type)  # fmt: skip
        return Receipt("woken", batch_id)

    def _wake(self, delivery: Delivery, job_id: str) -> Receipt:
        try:
            job = self.store.get(job_id)
        except JobNotFoundError:
            log.debug("webhook.unknown_job", job_id=job_id, response_id=delivery.object_id)
            return Receipt("unknown")
        due = (
            not job.terminal
            and job.step == Step.POLL
            and job.handle.get("response_id") == delivery.object_id
        )
        if not due:
            # A poll already saw the end, or the job is past that response (a tool
            # round, a retry with a new run): nothing to do.
            log.debug("webhook.not_due", job_id=job_id, response_id=delivery.object_id,
                      step=str(job.step), status=str(job.status))  # fmt: skip
            return Receipt("not_due", job_id)
        self.wake(job_id, job.token)
        return _woken(delivery, job_id)


def _woken(delivery: Delivery, job_id: str) -> Receipt:
    """A job's poll was woken, by the inbox's call or from the record: one log line for
    both (the benchmark times a result from it)."""
    log.info("webhook.job_woken", job_id=job_id, response_id=delivery.object_id,
             type=delivery.type)  # fmt: skip
    return Receipt("woken", job_id)
