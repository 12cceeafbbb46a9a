"""Everything a request handler needs, in one object hung on ``app.state.sandbox``."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.engine.faults import FAULT_HEADER, FaultInjector
from runq.sandbox.engine.ratelimit import RateLimiter
from runq.sandbox.engine.stats import Stats
from runq.sandbox.engine.store import Store


@dataclass
class SandboxState:
    config: SandboxConfig
    store: Store = field(default_factory=Store)
    stats: Stats = field(default_factory=Stats)
    faults: FaultInjector = field(init=False)
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.faults = FaultInjector(self.config.faults, self.config.seed)
        self.limiter = RateLimiter(self.config.rpm, self.config.tpm)

    def reset(self) -> None:
        """Forget every object and counter (``POST /sandbox/reset``)."""
        self.store.reset()
        self.stats.reset()
        self.faults.reset()
        self.limiter.reset()

    def outcome_fault(self, request: Request) -> str | None:
        """Draw the outcome fault for an object being created by ``request``."""
        kind = self.faults.outcome(request.headers.get(FAULT_HEADER))
        if kind:
            self.stats.count_fault(kind)
        return kind


def get_state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state
