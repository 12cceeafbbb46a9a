"""Webhooks: the sandbox tells an endpoint when a background response (or a batch) ends.

OpenAI pushes ``response.completed|failed|cancelled|incomplete`` and
``batch.completed|failed|expired|cancelled`` to a configured endpoint; runq's webhook
mode consumes them instead of polling. The sandbox sends the same deliveries so that
mode can be tested and benchmarked offline:

* **Shape.** A JSON body ``{"id": "evt_…", "object": "event", "created_at": <when the
  object ended>, "type": "response.completed", "data": {"id": "resp_…"}}`` signed per
  the Standard Webhooks spec: ``webhook-id`` (``wh_…``, the same on every retry and
  duplicate of one delivery), ``webhook-timestamp`` (of this attempt) and
  ``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed by
  the base64-decoded part of the ``whsec_…`` secret. ``openai``'s
  ``client.webhooks.unwrap(body, headers, secret=...)`` verifies and parses them.
* **At least once, never on the request path.** An API handler only pushes onto a heap
  (microseconds, under a lock). One scheduler thread pops what is due and a few sender
  threads POST it, so a slow or dead receiver never slows the API. A non-2xx reply or a
  connection error is retried with exponential backoff (:meth:`WebhookSender.backoff`);
  redirects are not followed (a 3xx is a failure, as with OpenAI). After
  ``webhook_max_attempts`` attempts the delivery is abandoned.
* **Faults** (``webhook_drop``, ``webhook_delay``, ``webhook_duplicate`` in the fault
  profile) are drawn once per event from their own seeded dice
  (:meth:`~runq.sandbox.engine.faults.FaultInjector.webhook`): a drop never sends, a
  delay sends ``webhook_delay_seconds`` late, a duplicate sends two independent
  deliveries with the same ``webhook-id``.

Background responses are planned at creation and their status is derived from the clock
(:mod:`runq.sandbox.engine.lifecycle`), so nothing "happens" at their end: creating one
schedules a check at its ``done_at``, which emits the event for the status it has then;
a cancel emits ``response.cancelled`` at once and that check then stays silent.

Deliveries still pending when the server stops are lost, like those of a crashed
sender; the receiver's safety poll covers them. The secret is never logged, never shown
by ``/sandbox/stats`` and never in the config's ``repr``.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import logging
import queue
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from typing import Any

from runq.sandbox.engine.faults import FaultInjector
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.response_objects import ResponseRecord
from runq.sandbox.engine.stats import Stats
from runq.sandbox.engine.webhook_signing import check_url, decode_secret, event_body, sign

log = logging.getLogger("sandbox")

USER_AGENT = "OpenAI/1.0 (+https://platform.openai.com/docs/webhooks)"
BACKOFF_CAP_SECONDS = 60.0  # no wait between two attempts is longer than this
ATTEMPT_TIMEOUT_SECONDS = 10.0  # connect + reply, per attempt
SENDER_THREADS = 8  # receivers answering slowly hold at most this many deliveries at once

RESPONSE_EVENTS = frozenset(
    ("response.completed", "response.failed", "response.cancelled", "response.incomplete")
)
BATCH_EVENTS = frozenset(("batch.completed", "batch.failed", "batch.expired", "batch.cancelled"))
EVENT_TYPES = RESPONSE_EVENTS | BATCH_EVENTS


@dataclass
class _Delivery:
    """One delivery of one event; a duplicate is a second delivery with the same id."""

    webhook_id: str
    event_type: str
    body: bytes
    generation: int  # the sender's reset count when it was queued
    attempt: int = 1


@dataclass
class _Watch:
    """Announce the end of a background response once its planned end has passed."""

    record: ResponseRecord


class WebhookSender:
    """Signs and delivers webhook events in the background; inert without a URL.

    The public entry point for other sandbox APIs is :meth:`emit` (the Batch API calls
    ``state.webhooks.emit("batch.completed", {"id": batch_id})``); background responses
    use :meth:`response_created` and :meth:`response_cancelled`.
    """

    def __init__(
        self,
        url: str | None,
        secret: str | None,
        faults: FaultInjector,
        stats: Stats,
        *,
        max_attempts: int = 8,
        retry_base_seconds: float = 1.0,
        delay_seconds: float = 5.0,
    ) -> None:
        self._url = url
        self._key = decode_secret(secret) if url and secret else b""
        if url:
            check_url(url)
            if not secret:
                raise ValueError("a webhook URL needs a webhook secret to sign with")
        self._faults = faults
        self._stats = stats
        self.max_attempts = max(1, max_attempts)
        self.retry_base_seconds = retry_base_seconds
        self.delay_seconds = delay_seconds
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Delivery | _Watch]] = []
        self._order = itertools.count()
        self._outbox: queue.SimpleQueue[_Delivery | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._stopped = False
        self._counts: Counter[str] = Counter()
        self._events: Counter[str] = Counter()
        self._pending = 0
        self._generation = 0

    @property
    def enabled(self) -> bool:
        return bool(self._url)

    # -- what the API calls ---------------------------------------------------------
    def emit(
        self, event_type: str, data: dict[str, Any], created_at: float | None = None
    ) -> str | None:
        """Queue one event for delivery; return its ``webhook-id`` (``None`` if disabled
        or dropped by fault injection). Never blocks on the network.

        ``data`` is the event's payload (``{"id": "batch_…"}``); ``created_at`` is when
        the object reached its end (default: now). Unknown types are refused
        (``ValueError``) so a typo cannot send an event no client can parse.
        """
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown webhook event type {event_type!r}")
        if not self.enabled:
            return None
        stamp = int(time.time() if created_at is None else created_at)
        body = event_body(event_type, data, stamp)
        fault = self._faults.webhook()
        with self._cond:
            delivery = _Delivery(new_id("wh"), event_type, body, self._generation)
            self._events[event_type] += 1
            if fault:
                self._stats.count_fault(fault)
            if fault == "webhook_drop":
                self._counts["dropped"] += 1
                return None
            due = time.time()
            if fault == "webhook_delay":
                self._counts["delayed"] += 1
                due += self.delay_seconds
            self._push(due, delivery)
            if fault == "webhook_duplicate":
                self._counts["duplicated"] += 1
                twin = _Delivery(delivery.webhook_id, event_type, body, self._generation)
                self._push(due, twin)
        return delivery.webhook_id

    def response_created(self, record: ResponseRecord) -> None:
        """Schedule the end-of-response event of a new background response."""
        if self.enabled:
            with self._cond:
                self._push(record.timeline.done_at, _Watch(record))

    def response_cancelled(self, record: ResponseRecord) -> None:
        """A background response was cancelled before its end: announce it now."""
        if self.enabled:
            self.emit("response.cancelled", {"id": record.id}, record.cancelled_at)

    def counts(self) -> dict[str, Any]:
        """Delivery counters for ``/sandbox/stats`` (see docs/sandbox.md, "Webhooks")."""
        with self._cond:
            names = ("sent", "succeeded", "retried", "abandoned", "dropped", "delayed")
            out: dict[str, Any] = {name: self._counts[name] for name in names}
            out["duplicated"] = self._counts["duplicated"]
            out["pending"] = self._pending
            out["events"] = dict(self._events)
            out["enabled"] = self.enabled
            return out

    def reset(self) -> None:
        """Forget counters and every delivery not yet sent (``POST /sandbox/reset``)."""
        with self._cond:
            self._heap.clear()
            self._generation += 1  # deliveries already being sent no longer count
            self._counts.clear()
            self._events.clear()
            self._pending = 0

    def close(self) -> None:
        """Stop the threads; deliveries not yet sent are lost (as in a crash)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for _ in self._threads:
            self._outbox.put(None)

    # -- policy ---------------------------------------------------------------------
    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next:
        ``min(BACKOFF_CAP_SECONDS, webhook_retry_base_seconds · 2^(attempt-1))``.

        No jitter, so a seeded run retries at the same offsets; with the defaults (1 s,
        8 attempts) a delivery is given up about 2 minutes after its first attempt.
        """
        return min(BACKOFF_CAP_SECONDS, self.retry_base_seconds * 2 ** (attempt - 1))

    # -- machinery --------------------------------------------------------------------
    def _push(self, due: float, item: _Delivery | _Watch) -> None:
        """Add ``item`` to the schedule; the caller holds ``self._cond``."""
        if self._stopped:
            return
        if not self._threads:
            self._start()
        if isinstance(item, _Delivery) and item.attempt == 1:
            self._pending += 1
        heapq.heappush(self._heap, (due, next(self._order), item))
        if self._heap[0][2] is item:
            self._cond.notify()

    def _start(self) -> None:
        threads = [threading.Thread(target=self._schedule, name="sandbox-webhooks", daemon=True)]
        for n in range(SENDER_THREADS):
            name = f"sandbox-webhook-send-{n}"
            threads.append(threading.Thread(target=self._send_loop, name=name, daemon=True))
        self._threads = threads
        for thread in threads:
            thread.start()

    def _schedule(self) -> None:
        """Hand every item to its handler when it falls due."""
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.time()):
                    wait = self._heap[0][0] - time.time() if self._heap else None
                    self._cond.wait(wait)
                if self._stopped:
                    return
                _, _, item = heapq.heappop(self._heap)
            if isinstance(item, _Watch):
                self._announce_end(item.record)
            else:
                self._outbox.put(item)

    def _announce_end(self, record: ResponseRecord) -> None:
        if record.cancelled_at is not None:
            return  # response_cancelled announced it when it happened
        status = record.status()
        if status in ("queued", "in_progress"):  # not possible with one clock; be safe
            with self._cond:
                self._push(record.timeline.done_at + 0.01, _Watch(record))
            return
        self.emit(f"response.{status}", {"id": record.id}, record.timeline.done_at)

    def _send_loop(self) -> None:
        while True:
            delivery = self._outbox.get()
            if delivery is None:
                return
            error = self._post(delivery)
            self._settle(delivery, error)

    def _post(self, delivery: _Delivery) -> str | None:
        """One attempt; ``None`` on a 2xx reply, else why it failed (no secret in it)."""
        assert self._url is not None
        parts = urllib.parse.urlsplit(self._url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": delivery.webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._key, delivery.webhook_id, timestamp, delivery.body),
            "connection": "close",
        }
        conn_type = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        conn = conn_type(parts.hostname or "", parts.port, timeout=ATTEMPT_TIMEOUT_SECONDS)
        with self._cond:
            if delivery.generation == self._generation:
                self._counts["sent"] += 1
        try:
            conn.request("POST", path, body=delivery.body, headers=headers)
            reply = conn.getresponse()
            reply.read()
            if 200 <= reply.status < 300:
                return None
            return f"HTTP {reply.status}"
        except (OSError, http.client.HTTPException) as exc:
            return type(exc).__name__
        finally:
            conn.close()

    def _settle(self, delivery: _Delivery, error: str | None) -> None:
        with self._cond:
            if delivery.generation != self._generation:
                return  # queued before a reset
            if error is None:
                self._counts["succeeded"] += 1
                self._pending -= 1
                return
            if delivery.attempt >= self.max_attempts:
                self._counts["abandoned"] += 1
                self._pending -= 1
            else:
                self._counts["retried"] += 1
                due = time.time() + self.backoff(delivery.attempt)
                delivery.attempt += 1
                self._push(due, delivery)
                return
        log.warning(
            "sandbox.webhook_abandoned webhook_id=%s type=%s attempts=%d last_error=%s",
            delivery.webhook_id,
            delivery.event_type,
            delivery.attempt,
            error,
        )
