"""The timeline of a run, from which its status is derived lazily.

Nothing runs in the background: a response's whole future is planned at creation
(``queued`` until ``started_at``, ``in_progress`` until ``done_at``, then its final
status) and every read computes where it is *now*. This is what lets one process hold
thousands of concurrent background responses with no task or thread per response.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Timeline:
    created_at: float
    started_at: float  # queued -> in_progress
    first_token_at: float  # time to first token
    done_at: float  # in_progress -> terminal

    @classmethod
    def plan(
        cls,
        latency_ms: float,
        output_tokens: int,
        tokens_per_second: float,
        now: float | None = None,
    ) -> Timeline:
        """Queued for a quarter of the latency, first token at ``latency_ms``, then the
        output at ``tokens_per_second`` (0 = all at once)."""
        now = time.time() if now is None else now
        latency = max(0.0, latency_ms) / 1000.0
        gen = output_tokens / tokens_per_second if tokens_per_second > 0 else 0.0
        return cls(now, now + latency / 4, now + latency, now + latency + gen)

    def phase(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        if now < self.started_at:
            return "queued"
        if now < self.done_at:
            return "in_progress"
        return "done"

    def remaining_ms(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return max(1, int((self.done_at - now) * 1000 + 0.999))

    def token_time(self, index: int, total: int) -> float:
        """When the ``index``-th of ``total`` output tokens is produced."""
        if total <= 0:
            return self.first_token_at
        span = self.done_at - self.first_token_at
        return self.first_token_at + span * (index / total)
