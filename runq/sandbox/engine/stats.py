"""Counters behind ``GET /sandbox/stats``.

The integration tests and benchmarks read these to prove properties of runq from the
outside: that no job created two responses (``responses_created_by_job``), that a
cancel reached the backend, how many runs were in flight at the peak.

In-flight accounting is exact and cheap: a background response is in flight over
``[created_at, done_at)``. Each creation pushes its ``done_at`` on a heap; entries that
are in the past are popped before counting, so ``len(heap)`` (minus the responses
cancelled before their end) is the number in flight *now*. The count only grows at a
creation, so updating the peak there gives the exact maximum.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import Counter
from typing import Any


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests: Counter[str] = Counter()
            self.faults: Counter[str] = Counter()
            self.created: dict[str, Counter[str]] = {}
            self.cancelled: dict[str, Counter[str]] = {}
            self.cancel_requests: dict[str, Counter[str]] = {}
            self._heap: list[tuple[float, str]] = []
            self._ended_early: set[str] = set()
            self.peak_in_flight = 0
            self.tiers: Counter[str] = Counter()  # live requests by service tier
            self.batches: Counter[str] = Counter()  # "created", and each ending reached
            self.batch_lines: Counter[str] = Counter()  # "answered", "completed", "failed"

    # -- counters ---------------------------------------------------------------------
    def count_request(self, method: str, route: str, status: int) -> None:
        with self._lock:
            self.requests[f"{method} {route} {status}"] += 1

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def count_created(self, kind: str, job_id: str | None) -> None:
        """``kind`` is ``responses``, ``runs`` or ``chat_completions``."""
        with self._lock:
            self.created.setdefault(kind, Counter())[job_id or ""] += 1

    def count_cancel_request(self, kind: str, job_id: str | None) -> None:
        with self._lock:
            self.cancel_requests.setdefault(kind, Counter())[job_id or ""] += 1

    def count_cancelled(self, kind: str, job_id: str | None) -> None:
        with self._lock:
            self.cancelled.setdefault(kind, Counter())[job_id or ""] += 1

    def count_tier(self, tier: str) -> None:
        """A live request served on ``tier``, or refused (``flex_refused``)."""
        with self._lock:
            self.tiers[tier] += 1

    def count_batch(self, event: str, lines: Counter[str] | None = None) -> None:
        """A batch ``created`` or ended (``completed``, ``failed``...), with its lines."""
        with self._lock:
            self.batches[event] += 1
            self.batch_lines.update(lines or Counter())

    def total_requests(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    # -- in flight --------------------------------------------------------------------
    def _prune(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, rid = heapq.heappop(heap)
            self._ended_early.discard(rid)

    def response_started(self, response_id: str, done_at: float) -> None:
        """Record a new background response in flight until ``done_at``."""
        now = time.time()
        with self._lock:
            self._prune(now)
            if done_at > now:
                heapq.heappush(self._heap, (done_at, response_id))
            current = len(self._heap) - len(self._ended_early)
            self.peak_in_flight = max(self.peak_in_flight, current)

    def response_ended_early(self, response_id: str, done_at: float) -> None:
        """A response cancelled (or failed) before its planned ``done_at``."""
        with self._lock:
            if done_at > time.time():
                self._ended_early.add(response_id)

    def in_flight(self) -> int:
        with self._lock:
            self._prune(time.time())
            return len(self._heap) - len(self._ended_early)

    # -- output -----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        in_flight = self.in_flight()
        with self._lock:

            def by_job(table: dict[str, Counter[str]], kind: str) -> dict[str, int]:
                return {k: v for k, v in table.get(kind, Counter()).items() if k}

            return {
                "requests": dict(self.requests),
                "responses_created": sum(self.created.get("responses", Counter()).values()),
                "responses_created_by_job": by_job(self.created, "responses"),
                "responses_cancelled_by_job": by_job(self.cancelled, "responses"),
                "response_cancel_requests_by_job": by_job(self.cancel_requests, "responses"),
                "runs_created": sum(self.created.get("runs", Counter()).values()),
                "runs_created_by_job": by_job(self.created, "runs"),
                "runs_cancelled_by_job": by_job(self.cancelled, "runs"),
                "run_cancel_requests_by_job": by_job(self.cancel_requests, "runs"),
                "chat_completions_created": sum(
                    self.created.get("chat_completions", Counter()).values()
                ),
                "chat_completions_created_by_job": by_job(self.created, "chat_completions"),
                "in_flight_responses": in_flight,
                "peak_in_flight_responses": self.peak_in_flight,
                "faults": dict(self.faults),
                "requests_by_service_tier": dict(self.tiers),
                "batches_created": self.batches["created"],
                "batches_completed": self.batches["completed"],
                "batches_by_ending": {k: v for k, v in self.batches.items() if k != "created"},
                "batch_lines": dict(self.batch_lines),
            }
