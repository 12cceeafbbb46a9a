"""Circuit breaker per backend link, shared by all workers through Redis.

A fallback chain skips a link whose breaker is open, so that a backend that is down
costs one probe every `open_seconds` instead of a timeout for every job. The state is
in Redis because the evidence is spread over all workers: K consecutive failures seen
by different processes must open the breaker for all of them.

States::

    closed  --K consecutive failures-->  open
    open    --open_seconds elapsed, one allow()-->  half_open (that caller is the probe)
    half_open --probe succeeds-->  closed
    half_open --probe fails-->     open (for another open_seconds)

Only one probe is let through at a time; if the probe's worker dies without reporting,
another probe is allowed after `probe_timeout` (default `open_seconds`), and a probe that
decides not to call (the rate limiter says wait) gives the probe back at once. A refused
caller learns when the state can next change (`ask()`), so waiting jobs come back when
the probe can have answered rather than a whole open period later. Results that
arrive while the breaker is open come from calls started before it opened and are
ignored: the probe decides. Every transition is one Lua script, so concurrent workers
cannot both become the probe or lose a failure count (`breaker.lua`).

Record only failures that say the link is unhealthy (retryable errors: timeouts,
5xx, connection errors), not a 400 caused by the job's own input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from runq.runs import keys, lua
from runq.runs.replies import text

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class Admission:
    """The answer to "may I call this link?".

    `probe` is True for the one caller let through a half-open breaker: it must report
    its call's outcome, or `release_probe()` if it makes none. A refused caller learns
    `wait`, the seconds until the breaker's state can next change: the end of the open
    period, or the probe's timeout while a probe is out.
    """

    allowed: bool
    state: State
    wait: float = 0.0
    clean: bool = False  # closed with no failures counted when asked: nothing to reset

    @property
    def probe(self) -> bool:
        return self.allowed and self.state == "half_open"


class CircuitBreaker:
    """The breaker of one backend link (see the module docstring).

    `clock` returns the time in seconds (for tests); by default the Redis server's
    clock is used, so all workers agree on when the open period ends. The Redis key
    expires `idle_seconds` after the last change (once the open period and a probe
    timeout have passed), so a link that is no longer used leaves nothing behind.
    """

    def __init__(
        self,
        redis: Any,
        link: str,
        failure_threshold: int = 5,
        open_seconds: float = 30.0,
        *,
        probe_timeout: float | None = None,
        idle_seconds: float = 3600.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if int(failure_threshold) < 1:
            raise ValueError("failure_threshold must be >= 1")
        if float(open_seconds) < 0:
            raise ValueError("open_seconds must be >= 0")
        self.redis = redis
        self.link = link
        self.key = keys.breaker(link)
        self.failure_threshold = int(failure_threshold)
        self.open_seconds = float(open_seconds)
        self.probe_timeout = float(open_seconds if probe_timeout is None else probe_timeout)
        self.idle_seconds = float(idle_seconds)
        self.clock = clock
        self._script = lua.register(redis, "breaker")

    def _call(self, op: str) -> Any:
        now = "" if self.clock is None else repr(float(self.clock()))
        ttl = self.open_seconds + self.probe_timeout + self.idle_seconds
        args: list[str | int] = [op, now, self.failure_threshold, repr(self.open_seconds)]
        args += [repr(self.probe_timeout), max(1, int(ttl * 1000))]
        return self._script(keys=[self.key], args=args)

    def allow(self) -> bool:
        """May a call go to this link now? True when closed, or for the one probe."""
        return self.ask().allowed

    def ask(self) -> Admission:
        """`allow()`, plus what a refused caller needs to know to come back in time.

        A closed breaker (almost every call) is read with one `HGET`: closed lets the
        call through without writing anything, so reading it outside the script answers
        what the script would have at that instant. Only a breaker that is open or half
        open needs the script's clock and its probe's compare-and-set."""
        stored = self.redis.hget(self.key, "state")
        if stored is None or text(stored) == "closed":
            return Admission(True, "closed", clean=stored is None)
        allowed, state, wait, *clean = self._call("allow")
        return Admission(bool(int(allowed)), self._state(state), max(0.0, float(text(wait))),
                         clean=bool(clean and int(clean[0])))  # fmt: skip

    def release_probe(self) -> State:
        """The probe this caller was given will not call the link: let another go now."""
        return self._state(self._call("release"))

    def record_success(self) -> State:
        """A call succeeded: closes a half-open breaker, resets the failure count.

        A breaker with no key is closed with nothing counted (the usual case), and a
        success would write nothing: one `HGET` says so, without the script."""
        if self.redis.hget(self.key, "state") is None:
            return "closed"
        return self._state(self._call("success"))

    def record_failure(self) -> State:
        """A call failed: the K-th consecutive failure, or a failed probe, opens it."""
        return self._state(self._call("failure"))

    def state(self) -> State:
        """The effective state: an open breaker whose period is over reads half_open."""
        return self._state(self._call("state"))

    def reset(self) -> None:
        """Close the breaker by hand (an operator knows the link is back)."""
        self.redis.delete(self.key)

    @staticmethod
    def _state(raw: Any) -> State:
        state = text(raw)
        if state not in ("closed", "open", "half_open"):
            raise ValueError(f"unexpected breaker state {state!r}")
        return state  # type: ignore[return-value]
