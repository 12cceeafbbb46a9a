"""Per-API-key request and token rate limits, with OpenAI's headers.

Each key has two token buckets that refill continuously: ``rpm`` requests and ``tpm``
tokens per minute. A request costs one request and an estimate of its tokens made
before the handler runs (like OpenAI, which counts the prompt and ``max_tokens`` up
front): ``ceil(body bytes / 4)``. A limit of 0 means unlimited; the headers then report
a nominal limit (``UNLIMITED_RPM``/``UNLIMITED_TPM``) that never runs out.

Every ``/v1`` response carries ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``;
a refused request gets 429 with ``retry-after`` (seconds, rounded up) and
``retry-after-ms``.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

UNLIMITED_RPM = 1_000_000
UNLIMITED_TPM = 100_000_000


def format_reset(seconds: float) -> str:
    """OpenAI's duration format: ``20ms``, ``1s``, ``6m0s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    minutes, secs = divmod(seconds, 60)
    if minutes >= 1:
        return f"{int(minutes)}m{secs:.0f}s"
    return f"{secs:.3g}s"


@dataclass
class _Bucket:
    capacity: float
    level: float
    updated: float

    def refill(self, now: float) -> None:
        rate = self.capacity / 60.0
        self.level = min(self.capacity, self.level + (now - self.updated) * rate)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 if it is now)."""
        missing = amount - self.level
        return 0.0 if missing <= 0 else missing / (self.capacity / 60.0)

    def until_full(self) -> float:
        return (self.capacity - self.level) / (self.capacity / 60.0)


@dataclass
class Decision:
    allowed: bool
    headers: dict[str, str]
    retry_after: float = 0.0


class RateLimiter:
    def __init__(self, rpm: int, tpm: int) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[_Bucket, _Bucket]] = {}

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()

    def _pair(self, key: str, now: float) -> tuple[_Bucket, _Bucket]:
        pair = self._buckets.get(key)
        if pair is None:
            rpm = float(self.rpm or UNLIMITED_RPM)
            tpm = float(self.tpm or UNLIMITED_TPM)
            pair = (_Bucket(rpm, rpm, now), _Bucket(tpm, tpm, now))
            self._buckets[key] = pair
        return pair

    def check(self, key: str, tokens: int) -> Decision:
        """Take one request and ``tokens`` tokens from ``key``'s buckets, if available."""
        now = time.time()
        with self._lock:
            req, tok = self._pair(key, now)
            req.refill(now)
            tok.refill(now)
            tokens = min(tokens, int(tok.capacity))
            wait = 0.0
            if self.rpm:
                wait = max(wait, req.wait_for(1))
            if self.tpm:
                wait = max(wait, tok.wait_for(tokens))
            allowed = wait <= 0
            if allowed:
                if self.rpm:
                    req.level -= 1
                if self.tpm:
                    tok.level -= tokens
            headers = {
                "x-ratelimit-limit-requests": str(int(req.capacity)),
                "x-ratelimit-remaining-requests": str(max(0, math.floor(req.level))),
                "x-ratelimit-reset-requests": format_reset(req.until_full()),
                "x-ratelimit-limit-tokens": str(int(tok.capacity)),
                "x-ratelimit-remaining-tokens": str(max(0, math.floor(tok.level))),
                "x-ratelimit-reset-tokens": format_reset(tok.until_full()),
            }
        if not allowed:
            headers["retry-after"] = str(max(1, math.ceil(wait)))
            headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
        return Decision(allowed, headers, wait)
