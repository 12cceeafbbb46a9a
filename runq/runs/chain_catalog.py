"""The fallback chains the workers know, published in Redis so producers can check.

Chains are the workers' configuration (`RUNQ_CONFIG` / `RUNQ_CHAINS`, read from the
environment or `.env`): a job names one, and the worker resolves its links from its own
settings (`runq.runs.chains`). A producer started in another terminal may read another
configuration, or none, so checking `--chain NAME` against its own settings would
accept a chain no worker has (the job then fails at the worker) or refuse one they all
have. Every worker therefore publishes its chain names when it starts (`worker.signals`),
into one set, and producers refuse a chain that neither it nor their own settings name.

Workers add to the set and never remove from it, as for tools (`tool_catalog`): a chain
dropped from every worker stays listed until `DEL runq:chaincatalog` and a restart of
the workers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog

from runq.runs import keys
from runq.runs.replies import text

log = structlog.get_logger("runq.chains")


def publish(redis: Any, names: Iterable[str]) -> None:
    """Add these chain names to the catalog; a Redis failure is logged, not raised."""
    chains = sorted(names)
    if not chains:
        return
    try:
        redis.sadd(keys.chain_catalog(), *chains)
    except Exception as exc:  # redis-py's errors; the worker must start regardless
        log.warning("chains.publish_failed", error=str(exc), chains=len(chains))
        return
    log.info("chains.published", chains=chains)


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


def published_names(redis: Any) -> set[str] | None:
    """The chain names workers published, or None when no worker has published any."""
    names = {text(name) for name in redis.smembers(keys.chain_catalog())}
    return names or None
