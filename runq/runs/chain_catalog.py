"""The fallback chains the workers know, published in Redis so producers can check.

Chains are the workers' configuration (`RUNQ_CONFIG` / `RUNQ_CHAINS`, read from the
environment or `.env`): a job names one, and the worker resolves its links from its own
settings (`runq.runs.chains`). A producer started in another terminal may read another
configuration, or none, so checking `--chain NAME` against its own settings would
accept a chain no worker has (the job then fails at the worker) or refuse one they all
have. Every worker therefore publishes its chain names, as for tools (`tool_catalog`):
a hash of chain name -> when a worker last said it has it, written when the worker
starts and again every `tool_catalog.REFRESH_EVERY` seconds. Producers refuse a chain
that neither their own settings nor a worker seen in the last `STALE_AFTER` seconds
name; a chain dropped from every worker leaves the catalog a few minutes later.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import structlog

from runq.runs import keys
from runq.runs.replies import text
from runq.runs.tool_catalog import seen_lately

log = structlog.get_logger("runq.chains")


def publish(redis: Any, names: Iterable[str], *, now: float | None = None,
            quiet: bool = False) -> None:  # fmt: skip
    """Mark these chain names seen now and drop the ones nobody refreshed; a Redis
    failure is logged, not raised. `quiet`: a refresh, logged at debug level."""
    chains = sorted(names)
    if not chains:
        return
    now = time.time() if now is None else now
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.hset(keys.chain_catalog(), mapping={name: repr(now) for name in chains})
        pipe.hgetall(keys.chain_catalog())
        pipe.delete(keys.legacy_chain_catalog())  # a set without times, never refreshed
        _, seen, _ = pipe.execute()
        stale = sorted({text(name) for name in seen} - seen_lately(seen, now))
        if stale:
            redis.hdel(keys.chain_catalog(), *stale)
    except Exception as exc:  # redis-py's errors; the worker must start regardless
        log.warning("chains.publish_failed", error=str(exc), chains=len(chains))
        return
    (log.debug if quiet else log.info)("chains.published", chains=chains, dropped=stale)


def publish_to(redis_url: str | None, names: Iterable[str]) -> None:
    """`publish` over a connection of its own, closed after (a worker's start)."""
    if not redis_url:
        return
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        publish(client, names)
    finally:
        client.close()


def published_names(redis: Any, *, now: float | None = None) -> set[str] | None:
    """The chain names workers published lately, or None when no worker has lately."""
    seen = redis.hgetall(keys.chain_catalog())
    names = seen_lately(seen, time.time() if now is None else now)
    return names or None
