"""Everything a request handler needs, in one object hung on ``app.state.sandbox``.

The API layer finds it with :func:`runq.sandbox.api.http.get_state`; the engine only
sees this object, never a request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runq.sandbox.engine.batch_runner import BatchRunner
from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.engine.containers import ContainerPool
from runq.sandbox.engine.faults import FaultInjector
from runq.sandbox.engine.ingestion import IngestLimits, Ingestor
from runq.sandbox.engine.ratelimit import RateLimiter
from runq.sandbox.engine.service_tiers import FlexCapacity
from runq.sandbox.engine.stats import Stats
from runq.sandbox.engine.store import Store
from runq.sandbox.engine.webhook_endpoints import EndpointRegistry
from runq.sandbox.engine.webhooks import WebhookSender


@dataclass
class SandboxState:
    config: SandboxConfig
    store: Store = field(default_factory=Store)
    stats: Stats = field(default_factory=Stats)
    faults: FaultInjector = field(init=False)
    limiter: RateLimiter = field(init=False)
    ingestor: Ingestor = field(init=False)
    webhook_endpoints: EndpointRegistry = field(default_factory=EndpointRegistry)
    webhooks: WebhookSender = field(init=False)  # inert without a URL or an endpoint
    flex_capacity: FlexCapacity = field(init=False)
    batch_runner: BatchRunner = field(default_factory=BatchRunner)
    containers: ContainerPool = field(init=False)  # the code interpreter's

    def __post_init__(self) -> None:
        cfg = self.config
        self.faults = FaultInjector(cfg.faults, cfg.seed)
        self.limiter = RateLimiter(cfg.rpm, cfg.tpm)
        limits = IngestLimits(
            max_unpacked_bytes=cfg.ingest_max_unpacked_bytes,
            timeout_seconds=cfg.ingest_timeout_seconds,
            memory_bytes=cfg.ingest_memory_mb * 1024 * 1024,
        )
        self.ingestor = Ingestor(limits)
        self.webhooks = WebhookSender(
            cfg.webhook_url,
            cfg.webhook_secret,
            self.faults,
            self.stats,
            max_attempts=cfg.webhook_max_attempts,
            retry_base_seconds=cfg.webhook_retry_base_seconds,
            delay_seconds=cfg.webhook_delay_seconds,
            endpoints=self.webhook_endpoints,
        )
        self.flex_capacity = FlexCapacity(cfg.flex_unavailable_rate, cfg.seed)
        self.containers = ContainerPool(cfg.container_idle_minutes)

    def reset(self) -> None:
        """Forget every object and counter (``POST /sandbox/reset``)."""
        self.store.reset()
        self.stats.reset()
        self.faults.reset()
        self.limiter.reset()
        self.webhook_endpoints.reset()
        self.webhooks.reset()
        self.flex_capacity.reset()
        self.batch_runner.reset()
        self.containers.reset()

    def outcome_fault(self, requested: str | None) -> str | None:
        """Draw the outcome fault for an object being created, counting it.

        ``requested`` is the request's ``x-sandbox-fault`` header, which bypasses the dice.
        """
        kind = self.faults.outcome(requested)
        if kind:
            self.stats.count_fault(kind)
        return kind
