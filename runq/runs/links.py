"""Per-link services: the chain a job follows, and each link's breaker and rate limiter.

Steps ask this object, never Redis directly, so the core's unit tests can run with no
breaker and no limiter, and workers share both through Redis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from runq.runs.breaker import CircuitBreaker
from runq.runs.chains import AnswerCache, Chain, Link, chain_name, resolve_chain
from runq.runs.files.produced import FileKeeper
from runq.runs.files.storage import RedisFiles
from runq.runs.job import Job
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
    files: FileKeeper | None = None  # where a run's files go (None: Redis, default caps)

    def chain(self, job: Job) -> Chain:
        """The job's chain from this worker's configuration.

        The record says which chain (once its first step chose one) and nothing about
        its links: the hosts and key variables are this worker's, whatever the record
        holds (records written before 0.3 kept copies of the links; they are ignored).
        """
        name = job.chain if job.chain is not None else chain_name(job.spec, self.default_chain)
        return resolve_chain(name, job.spec, self.chains)

    def breaker(self, link: Link) -> CircuitBreaker | None:
        if self.redis is None or self.breaker_failures <= 0:
            return None
        return CircuitBreaker(
            self.redis,
            link.endpoint,
            failure_threshold=self.breaker_failures,
            open_seconds=self.breaker_open_seconds,
        )

    def limiter(self, link: Link) -> RateLimiter | None:
        rpm = link.rpm if link.rpm is not None else self.default_rpm
        tpm = link.tpm if link.tpm is not None else self.default_tpm
        if self.redis is None or not (rpm or tpm):
            return None
        return RateLimiter(self.redis, link.endpoint, rpm, tpm)

    def file_keeper(self) -> FileKeeper | None:
        """Keeps the files runs produce: the configured one, else Redis for as long as
        job records (None with no Redis: the core's unit tests)."""
        if self.files is not None:
            return self.files
        if self.redis is None:
            return None
        return FileKeeper(RedisFiles(self.redis, self.cache_ttl))

    @property
    def cache(self) -> AnswerCache | None:
        return AnswerCache(self.redis, self.cache_ttl) if self.redis is not None else None
