"""Service tiers on live requests: ``service_tier`` = ``auto|default|flex|priority``.

OpenAI sells the same model at three speeds. The sandbox models what a client sees:

* the tier is echoed in the response object (``auto`` and no tier answer ``default``);
* ``flex`` (batch-priced) is slower, its timeline stretched by
  ``flex_latency_multiplier``, and sometimes refused with 429 ``resource_unavailable``
  (at ``flex_unavailable_rate``, drawn by seeded dice like the faults, so a run of tests
  sees the same refusals every time; ``x-sandbox-fault: resource_unavailable`` forces one);
* ``priority`` is faster: its timeline shrunk by ``priority_latency_multiplier``.

The sandbox reports usage only; pricing a tier is runq's job.
"""

from __future__ import annotations

import random
import threading
from typing import TYPE_CHECKING

from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.engine.errors import SandboxError
from runq.sandbox.engine.lifecycle import Timeline

if TYPE_CHECKING:  # the state holds this module's dice: no import at run time
    from runq.sandbox.engine.state import SandboxState

TIERS = ("auto", "default", "flex", "priority")
# What the API takes: "scale" (reserved capacity) is accepted and served as default.
ACCEPTED = ("auto", "default", "flex", "scale", "priority")
FLEX_REFUSAL = "resource_unavailable"  # the code of the 429, and its x-sandbox-fault name


def echoed(requested: object) -> str:
    """The ``service_tier`` a response object shows: ``auto`` or none run as ``default``."""
    return "default" if requested in (None, "auto") else str(requested)


def multiplier(config: SandboxConfig, tier: str) -> float:
    """How much longer (flex) or shorter (priority) than ``default`` a request takes."""
    if tier == "flex":
        return config.flex_latency_multiplier
    if tier == "priority":
        return config.priority_latency_multiplier
    return 1.0


def stretched(timeline: Timeline, factor: float) -> Timeline:
    """``timeline`` with every phase after its creation ``factor`` times as long."""
    if factor == 1.0:
        return timeline
    start = timeline.created_at

    def at(moment: float) -> float:
        return start + (moment - start) * factor

    return Timeline(
        start, at(timeline.started_at), at(timeline.first_token_at), at(timeline.done_at)
    )


class FlexCapacity:
    """Seeded dice deciding which flex requests find no capacity.

    Its own ``random.Random`` (seeded from the server's seed, like the fault dice), so
    turning flex refusals on never shifts the sequence of the other faults.
    """

    def __init__(self, rate: float, seed: int) -> None:
        self._rate = rate
        self._seed = seed
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def reset(self) -> None:
        with self._lock:
            self._rng = random.Random(self._seed)

    def refuses(self, requested_fault: str | None) -> bool:
        """Whether this flex request is refused (the header forces it; else the dice)."""
        if requested_fault:
            return requested_fault == FLEX_REFUSAL
        if self._rate <= 0.0:
            return False  # no dice thrown
        with self._lock:
            return self._rng.random() < self._rate


def resource_unavailable() -> SandboxError:
    """OpenAI's answer when flex capacity is short: retry later, or on another tier."""
    return SandboxError(
        429,
        "Resource unavailable: there is not enough flex capacity to serve this request "
        "right now. Retry later, or send it with service_tier 'auto' or 'default'.",
        code=FLEX_REFUSAL,
        param="service_tier",
        headers={"retry-after": "1", "retry-after-ms": "1000"},
    )


def admit(state: SandboxState, requested: object, fault_header: str | None) -> float:
    """Admit a live request on its tier, counting it; its timeline multiplier.

    Raises the 429 ``resource_unavailable`` when a flex request finds no capacity.
    """
    tier = echoed(requested)
    if tier == "flex" and state.flex_capacity.refuses(fault_header):
        state.stats.count_tier("flex_refused")
        raise resource_unavailable()
    state.stats.count_tier(tier)
    return multiplier(state.config, tier)
