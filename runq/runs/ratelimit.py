"""Global rate limiter: one Redis token bucket per backend link, shared by all workers.

Celery's `rate_limit` is per worker; a backend's limit is per account. So the bucket
lives in Redis and is changed only by one Lua script (`ratelimit.lua`), atomically:
N workers on M machines never take more than the bucket holds.

The bucket has two dimensions, like the backends' own limits: requests per minute
(`rpm`) and model tokens per minute (`tpm`). Each refills continuously at
`per_minute / 60` per second up to its capacity (the burst, by default one minute's
worth). `acquire()` takes one request and the estimated tokens only when *both* are
there, else takes nothing and says exactly how long until both would be: the caller
re-schedules its task with that countdown instead of sleeping.

Time comes from the Redis server (`TIME`) so that workers with skewed clocks still
agree; tests pass a `clock` to make every wait exact (waits are exact to the
microsecond, Redis TIME's resolution). Nothing is reserved for a caller that was told
to wait: whoever comes first after the refill gets it, so under contention a caller
may be told to wait again (with a new exact wait).

Estimates are corrected once the real usage is known (`correct`), and the bucket is
calibrated from the `x-ratelimit-*` headers of each response (`calibrate`), so other
users of the same account, and a limit lower than configured, are taken into account.
All workers must use the same `rpm`/`tpm` for a link (they read one `Settings`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runq.runs import keys, lua

CHARS_PER_TOKEN = 4
"""The usual rule of thumb for English text with OpenAI's tokenizers."""

DEFAULT_OUTPUT_TOKENS = 1024
"""Output tokens assumed when a request sets no `max_output_tokens`."""


@dataclass(frozen=True)
class Acquired:
    """The answer of `RateLimiter.acquire`.

    `ok`: the request may go now (a request token and `tokens` were taken).
    `wait`: otherwise, seconds until both would be available (0 when ok).
    `tokens`: tokens charged or that would be charged: the estimate, or the bucket's
    capacity if the estimate is larger. Pass it to `correct()` as the estimate.
    """

    ok: bool
    wait: float
    tokens: int = 0


@dataclass(frozen=True)
class BucketLevels:
    """Current levels and capacities; None for a dimension that is not limited."""

    requests: float | None
    request_capacity: float | None
    tokens: float | None
    token_capacity: float | None


def estimate_tokens(text: str, max_output_tokens: int | None = None) -> int:
    """Tokens a request will count against the TPM limit, before we know.

    Backends count the prompt plus the requested output ceiling (`max_output_tokens`
    or `max_tokens`) when they admit a request, so we do too. The prompt is estimated
    as `ceil(len(text) / 4)`: about right for English with OpenAI's tokenizers, needs
    no tokenizer files (tiktoken may be unable to load them offline), and `correct()`
    fixes the difference once the response reports its usage.
    """
    prompt = math.ceil(len(text) / CHARS_PER_TOKEN)
    output = DEFAULT_OUTPUT_TOKENS if max_output_tokens is None else max(0, max_output_tokens)
    return max(1, prompt + output)


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(value: str | None) -> float | None:
    """Seconds in a Go-style duration as sent in `x-ratelimit-reset-*`.

    "1s" -> 1.0, "6m0s" -> 360.0, "20ms" -> 0.02, "1h2m3.5s" -> 3723.5; a bare number
    is seconds. Anything else -> None (the header is then ignored).
    """
    if value is None:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    if not text or _DURATION_PART.sub("", text):
        return None  # empty, or something left that is not a duration part
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _arg(value: float | None) -> str:
    return "" if value is None else repr(float(value))


class RateLimiter:
    """The token bucket of one backend link (see the module docstring).

    `rpm` / `tpm` None or 0 switch that dimension off; with both off the limiter is
    disabled and never touches Redis. `burst_requests` / `burst_tokens` set the
    capacities (default: one minute's worth). `clock` returns the time in seconds; by
    default the Redis server's clock is used.
    """

    def __init__(
        self,
        redis: Any,
        link: str,
        rpm: float | None,
        tpm: float | None,
        clock: Callable[[], float] | None = None,
        *,
        burst_requests: float | None = None,
        burst_tokens: float | None = None,
    ) -> None:
        self.redis = redis
        self.link = link
        self.key = keys.rate_bucket(link)
        self.rpm = float(rpm or 0)
        self.tpm = float(tpm or 0)
        if self.rpm < 0 or self.tpm < 0:
            raise ValueError("rpm and tpm must be >= 0 (0 or None: not limited)")
        self.burst_requests = float(burst_requests or self.rpm)
        self.burst_tokens = float(burst_tokens or self.tpm)
        self.clock = clock
        self._script = lua.register(redis, "ratelimit") if self.enabled else None

    @property
    def enabled(self) -> bool:
        return self.rpm > 0 or self.tpm > 0

    def _call(self, op: str, *args: str) -> list[Any]:
        assert self._script is not None
        now = "" if self.clock is None else repr(float(self.clock()))
        argv = [op, now, repr(self.rpm), repr(self.tpm)]
        argv += [repr(self.burst_requests), repr(self.burst_tokens), *args]
        result: list[Any] = self._script(keys=[self.key], args=argv)
        return result

    def acquire(self, tokens_estimate: int = 0) -> Acquired:
        """Take 1 request and `tokens_estimate` tokens if both are available, atomically.

        Otherwise take nothing and return the exact wait until both would be there.
        """
        if not self.enabled:
            return Acquired(True, 0.0, max(0, int(tokens_estimate)))
        cost = max(0, int(tokens_estimate))
        ok, wait, charged = self._call("acquire", str(cost))
        return Acquired(bool(int(ok)), float(wait), int(float(charged)))

    def correct(self, estimate: int, actual: int) -> None:
        """Charge (or refund) the difference once the response reports its real usage.

        A response that used more than estimated may leave the bucket in debt; later
        requests then wait until it is repaid, which keeps the long-run rate right.
        """
        delta = int(actual) - int(estimate)
        if self.tpm <= 0 or delta == 0:
            return
        self._call("correct", str(delta))

    def calibrate(self, headers: Mapping[str, str]) -> BucketLevels | None:
        """Adjust the bucket to what the server says in its `x-ratelimit-*` headers.

        From `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`: a limit below our
        configuration lowers the rate and capacity; the level never stays above what the
        server says remains, nor so high that our refill would fill the bucket before the
        server's reset. Missing or malformed headers are ignored. Returns the new
        levels, or None when nothing was calibrated.
        """
        if not self.enabled:
            return None
        lowered = {str(k).lower(): str(v) for k, v in headers.items()}
        args: list[str] = []
        for dim in ("requests", "tokens"):
            args.append(_arg(_header_number(lowered, f"x-ratelimit-limit-{dim}")))
            args.append(_arg(_header_number(lowered, f"x-ratelimit-remaining-{dim}")))
            args.append(_arg(parse_duration(lowered.get(f"x-ratelimit-reset-{dim}"))))
        if not any(args):
            return None
        return self._levels(self._call("calibrate", *args))

    def levels(self) -> BucketLevels:
        """The bucket as it is now (full if it was never used, or expired)."""
        if not self.enabled:
            return BucketLevels(None, None, None, None)
        return self._levels(self._call("peek"))

    @staticmethod
    def _levels(raw: list[Any]) -> BucketLevels:
        values = [float(v) if v not in ("", b"") else None for v in raw]
        return BucketLevels(*values)
