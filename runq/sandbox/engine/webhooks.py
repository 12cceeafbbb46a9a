"""Webhooks: the sandbox tells endpoints when a background response (or a batch) ends.

OpenAI pushes ``response.completed|failed|cancelled|incomplete`` and
``batch.completed|failed|expired|cancelled`` to configured endpoints; runq's webhook
mode consumes them instead of polling. The sandbox sends the same deliveries so that
mode can be tested and benchmarked offline:

* **Targets.** The endpoint of the command line (``--webhook-url``, signed with
  ``RUNQ_SANDBOX_WEBHOOK_SECRET``), if any, gets every event; each endpoint registered
  through ``/v1/webhook_endpoints`` (:mod:`runq.sandbox.engine.webhook_endpoints`) gets
  the types it subscribed to. Each target is one delivery of the same event (same body,
  same ``webhook-id``), retried on its own; a registered endpoint's delivery is routed
  and signed at each attempt with that endpoint's URL and keys of that moment (two
  signatures during a rotation's grace), and is discarded, counted as abandoned, if the
  endpoint was deleted before it went out.

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
  (:meth:`~runq.sandbox.engine.faults.FaultInjector.webhook`) and apply to each of its
  targets: a drop never sends, a delay sends ``webhook_delay_seconds`` late, a
  duplicate sends two independent deliveries with the same ``webhook-id``. An event no
  target wants draws nothing, so the dice follow the same sequence as before endpoints.

Background responses are planned at creation and their status is derived from the clock
(:mod:`runq.sandbox.engine.lifecycle`), so nothing "happens" at their end: creating one
schedules a check at its ``done_at``, which emits the event for the status it has then;
a cancel emits ``response.cancelled`` at once and that check then stays silent. Those
checks are only scheduled while some target exists; when the first endpoint is
registered, :meth:`WebhookSender.watch_in_flight` schedules them for the background
responses already running.

Deliveries still pending when the server stops are lost, like those of a crashed
sender; the receiver's safety poll covers them. The secret is never logged, never shown
by ``/sandbox/stats`` and never in the config's ``repr``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from runq.sandbox.engine.faults import FaultInjector
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.response_objects import ResponseRecord
from runq.sandbox.engine.stats import Stats
from runq.sandbox.engine.webhook_endpoints import EndpointRegistry
from runq.sandbox.engine.webhook_http import UNREACHABLE, post_signed
from runq.sandbox.engine.webhook_signing import check_url, decode_secret, event_body

log = logging.getLogger("sandbox")

BACKOFF_CAP_SECONDS = 60.0  # no wait between two attempts is longer than this
SENDER_THREADS = 8  # receivers answering slowly hold at most this many deliveries at once

RESPONSE_EVENTS = frozenset(
    ("response.completed", "response.failed", "response.cancelled", "response.incomplete")
)
BATCH_EVENTS = frozenset(("batch.completed", "batch.failed", "batch.expired", "batch.cancelled"))
EVENT_TYPES = RESPONSE_EVENTS | BATCH_EVENTS
# The counter each webhook fault increments (once per event, whatever its targets).
_FAULT_COUNTERS = {
    "webhook_drop": "dropped",
    "webhook_delay": "delayed",
    "webhook_duplicate": "duplicated",
}


@dataclass
class _Delivery:
    """One delivery of one event to one target; a duplicate is a second delivery with
    the same id (so is the delivery of the same event to another target)."""

    webhook_id: str
    event_type: str
    body: bytes
    generation: int  # the sender's reset count when it was queued
    endpoint_id: str | None  # a registered endpoint; None: the command line's URL
    attempt: int = 1


@dataclass
class _Watch:
    """Announce the end of a background response once its planned end has passed."""

    record: ResponseRecord


class WebhookSender:
    """Signs and delivers webhook events in the background; inert without a target
    (neither a command-line URL nor a registered endpoint).

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
        endpoints: EndpointRegistry | None = None,
    ) -> None:
        self._url = url
        self._key = decode_secret(secret) if url and secret else b""
        if url:
            check_url(url)
            if not secret:
                raise ValueError("a webhook URL needs a webhook secret to sign with")
        self._endpoints = endpoints if endpoints is not None else EndpointRegistry()
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
        self._watched: set[str] = set()  # responses whose end is scheduled for a check

    @property
    def enabled(self) -> bool:
        """Whether any event can have a target (a cheap check, made per response)."""
        return bool(self._url) or len(self._endpoints) > 0

    # -- what the API calls ---------------------------------------------------------
    def emit(
        self, event_type: str, data: dict[str, Any], created_at: float | None = None
    ) -> str | None:
        """Queue one event for delivery to each target that wants it; return its
        ``webhook-id`` (``None`` if no target wants it or it was dropped by fault
        injection). Never blocks on the network.

        ``data`` is the event's payload (``{"id": "batch_…"}``); ``created_at`` is when
        the object reached its end (default: now). Unknown types are refused
        (``ValueError``) so a typo cannot send an event no client can parse.
        """
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown webhook event type {event_type!r}")
        targets = self._targets(event_type)
        if not targets:
            return None
        stamp = int(time.time() if created_at is None else created_at)
        body = event_body(event_type, data, stamp)
        fault = self._faults.webhook()
        webhook_id = new_id("wh")
        with self._cond:
            self._events[event_type] += 1
            if fault:
                self._stats.count_fault(fault)
                self._counts[_FAULT_COUNTERS[fault]] += 1
            if fault == "webhook_drop":
                return None
            due = time.time() + (self.delay_seconds if fault == "webhook_delay" else 0.0)
            copies = 2 if fault == "webhook_duplicate" else 1
            for endpoint_id in targets:
                for _ in range(copies):
                    delivery = _Delivery(
                        webhook_id, event_type, body, self._generation, endpoint_id
                    )
                    self._push(due, delivery)
        return webhook_id

    def response_created(self, record: ResponseRecord) -> None:
        """Schedule the end-of-response event of a new background response."""
        if self.enabled:
            with self._cond:
                self._watch(record)

    def watch_in_flight(self, records: Iterable[ResponseRecord]) -> None:
        """Schedule the end of every background response still running among
        ``records`` that has no check yet (an endpoint was just registered)."""
        now = time.time()
        with self._cond:
            for rec in records:
                if rec.background and rec.cancelled_at is None and rec.timeline.done_at > now:
                    self._watch(rec)

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
            out["endpoints"] = len(self._endpoints)
            return out

    def reset(self) -> None:
        """Forget counters and every delivery not yet sent (``POST /sandbox/reset``)."""
        with self._cond:
            self._heap.clear()
            self._generation += 1  # deliveries already being sent no longer count
            self._counts.clear()
            self._events.clear()
            self._pending = 0
            self._watched.clear()

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
    def _targets(self, event_type: str) -> list[str | None]:
        """Who gets ``event_type``: the command line's URL (``None``), then endpoints."""
        targets: list[str | None] = [None] if self._url else []
        if len(self._endpoints):
            targets.extend(self._endpoints.subscribed(event_type))
        return targets

    def _watch(self, record: ResponseRecord) -> None:
        """Schedule ``record``'s end check unless it has one; the caller holds the lock."""
        if record.id not in self._watched:
            self._watched.add(record.id)
            self._push(record.timeline.done_at, _Watch(record))

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
                    self._watched.discard(item.record.id)
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
                self._watched.add(record.id)
                self._push(record.timeline.done_at + 0.01, _Watch(record))
            return
        self.emit(f"response.{status}", {"id": record.id}, record.timeline.done_at)

    def _send_loop(self) -> None:
        while True:
            delivery = self._outbox.get()
            if delivery is None:
                return
            route = self._route(delivery)
            if route is None:
                self._settle(delivery, "endpoint deleted", final=True)
                continue
            error = self._post(delivery, *route)
            self._settle(delivery, error)

    def _route(self, delivery: _Delivery) -> tuple[str, list[bytes]] | None:
        """The URL and signing keys of ``delivery``'s target now (``None``: deleted)."""
        if delivery.endpoint_id is None:
            assert self._url is not None
            return self._url, [self._key]
        return self._endpoints.route(delivery.endpoint_id)

    def _post(self, delivery: _Delivery, url: str, keys: list[bytes]) -> str | None:
        """One attempt; ``None`` on a 2xx reply, else why it failed (no secret in it)."""
        with self._cond:
            if delivery.generation == self._generation:
                self._counts["sent"] += 1
        try:
            status = post_signed(url, keys, delivery.webhook_id, delivery.body)
        except UNREACHABLE as exc:
            return type(exc).__name__
        return None if 200 <= status < 300 else f"HTTP {status}"

    def _settle(self, delivery: _Delivery, error: str | None, *, final: bool = False) -> None:
        """Count one attempt's outcome; retry it later unless it succeeded, was the last
        allowed, or is ``final`` (its endpoint is gone)."""
        with self._cond:
            if delivery.generation != self._generation:
                return  # queued before a reset
            if error is None:
                self._counts["succeeded"] += 1
                self._pending -= 1
                return
            if final or delivery.attempt >= self.max_attempts:
                self._counts["abandoned"] += 1
                self._pending -= 1
            else:
                self._counts["retried"] += 1
                due = time.time() + self.backoff(delivery.attempt)
                delivery.attempt += 1
                self._push(due, delivery)
                return
        log.warning(
            "sandbox.webhook_abandoned webhook_id=%s type=%s endpoint_id=%s attempts=%d "
            "last_error=%s",
            delivery.webhook_id,
            delivery.event_type,
            delivery.endpoint_id or "command-line",
            delivery.attempt - 1 if final else delivery.attempt,  # final: not attempted
            error,
        )
