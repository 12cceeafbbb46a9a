"""Fault injection: which fault (if any) hits a given request.

Three families, drawn separately so that each keeps a stable meaning:

* transport faults (``429``, ``500``, ``503``, ``reset``, ``hang``) can hit any ``/v1``
  request; they are decided by the middleware before the handler runs;
* outcome faults (``failed``, ``rate_limited``, ``incomplete``, ``expired``,
  ``bad_args``) only make sense for something that produces a run: they are drawn when a
  response, run or chat completion is created and change how it ends;
* webhook faults (``webhook_drop``, ``webhook_delay``, ``webhook_duplicate``) are drawn
  once per webhook event the sandbox sends (:mod:`runq.sandbox.engine.webhooks`), from
  dice of their own: deliveries happen on background threads, and sharing the request
  dice would make the request faults depend on thread timing.

A server-wide profile gives each kind a probability; one ``random.Random(seed)`` draws
them in request order, so the same profile, seed and request sequence give the same
faults run after run. A request may also ask for one fault with the ``x-sandbox-fault``
header (e.g. ``x-sandbox-fault: 503``), which bypasses the dice.
"""

from __future__ import annotations

import random
import threading

FAULT_HEADER = "x-sandbox-fault"

TRANSPORT_FAULTS = ("429", "500", "503", "reset", "hang")
OUTCOME_FAULTS = ("failed", "rate_limited", "incomplete", "expired", "bad_args")
WEBHOOK_FAULTS = ("webhook_drop", "webhook_delay", "webhook_duplicate")
FAULT_KINDS = frozenset(TRANSPORT_FAULTS + OUTCOME_FAULTS + WEBHOOK_FAULTS)
FAULT_FAMILIES = (TRANSPORT_FAULTS, OUTCOME_FAULTS, WEBHOOK_FAULTS)  # each adds up to <= 1


class FaultInjector:
    """Seeded dice for the configured fault profile."""

    def __init__(self, profile: dict[str, float], seed: int) -> None:
        self._profile = dict(profile)
        self._seed = seed
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._webhook_rng = random.Random(f"webhooks:{seed}")

    def reset(self) -> None:
        """Restart the sequence from the seed (used by ``POST /sandbox/reset``)."""
        with self._lock:
            self._rng = random.Random(self._seed)
            self._webhook_rng = random.Random(f"webhooks:{self._seed}")

    def _draw(self, kinds: tuple[str, ...], rng: random.Random | None = None) -> str | None:
        if not any(self._profile.get(k) for k in kinds):
            return None  # no dice thrown: an empty profile never shifts the sequence
        with self._lock:
            u = (rng or self._rng).random()
        acc = 0.0
        for kind in kinds:
            acc += self._profile.get(kind, 0.0)
            if u < acc:
                return kind
        return None

    def transport(self, requested: str | None) -> str | None:
        """The transport fault for this request: the header's, else the dice's."""
        if requested:
            return requested if requested in TRANSPORT_FAULTS else None
        return self._draw(TRANSPORT_FAULTS)

    def outcome(self, requested: str | None) -> str | None:
        """The outcome fault for a new response/run: the header's, else the dice's."""
        if requested:
            return requested if requested in OUTCOME_FAULTS else None
        return self._draw(OUTCOME_FAULTS)

    def webhook(self) -> str | None:
        """The webhook fault for one event about to be sent (webhook dice only)."""
        return self._draw(WEBHOOK_FAULTS, self._webhook_rng)
