"""Per-link services: the chain a job follows, and each link's breaker and rate limiter.

Steps ask this object, never Redis directly, so the core's unit tests can run with no
breaker and no limiter, and workers share both through Redis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from runq.runs.breaker import CircuitBreaker
from runq.runs.chains import AnswerCache, Link, links_for
from runq.runs.job import JobSpec
from runq.runs.ratelimit import RateLimiter


@dataclass
class LinkServices:
    """What a link needs beyond its backend: configured chains, breakers, limiters, cache."""

    redis: redis.Redis | None = None
    chains: dict[str, list[Link]] = field(default_factory=dict)
    default_chain: str | None = None
    breaker_failures: int = 5
    breaker_open_seconds: float = 30.0
    default_rpm: float | None = None
    default_tpm: float | None = None
    cache_ttl: int = 7 * 24 * 3600

    def links(self, spec: JobSpec) -> list[Link]:
        return links_for(spec, self.chains, self.default_chain)

    def breaker(self, link: Link) -> CircuitBreaker | None:
        if self.redis is None or self.breaker_failures <= 0:
            return None
        return CircuitBreaker(
            self.redis,
            link.name,
            failure_threshold=self.breaker_failures,
            open_seconds=self.breaker_open_seconds,
        )

    def limiter(self, link: Link) -> RateLimiter | None:
        rpm = link.rpm if link.rpm is not None else self.default_rpm
        tpm = link.tpm if link.tpm is not None else self.default_tpm
        if self.redis is None or not (rpm or tpm):
            return None
        return RateLimiter(self.redis, link.name, rpm, tpm)

    @property
    def cache(self) -> AnswerCache | None:
        return AnswerCache(self.redis, self.cache_ttl) if self.redis is not None else None
