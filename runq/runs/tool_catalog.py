"""The tools the workers have, published in Redis so producers can refuse unknown ones.

A producer (the CLI, a web app, the gateway) need not import the workers' tool modules,
yet a job that names a tool no worker has should be refused when it is submitted, not
fail minutes later inside a worker. So every worker publishes its registry: a hash of
tool name -> description (the JSON `runq tools --json` prints, schema included), and a
hash of tool name -> when a worker last said it has it. Producers check a job's tools
against the names seen in the last `STALE_AFTER` seconds.

Workers publish when they start and again every `REFRESH_EVERY` seconds (their pump,
`worker.signals`), so workers with different tool modules (a `tools` queue of its own,
a rolling deploy) publish the union, and a tool dropped from every worker leaves the
catalog a few minutes after the last worker that had it stopped: each publication
deletes the entries nobody refreshed. With no worker seen lately, producers check
nothing (a worker reports an unknown tool to the model, as before this check existed).
"""

from __future__ import annotations

import json
import time
from typing import Any

import structlog

from runq.runs import keys
from runq.runs.replies import text
from runq.runs.tools import ToolRegistry

log = structlog.get_logger("runq.tools")


STALE_AFTER = 300.0
"""A tool no worker re-published for this long is not listed (five refreshes missed)."""
REFRESH_EVERY = 60.0
"""How often each worker publishes its tools again (its pump, `worker.signals`)."""


def publish(redis: Any, registry: ToolRegistry, *, now: float | None = None,
            quiet: bool = False) -> None:  # fmt: skip
    """Add this process's tools to the catalog as seen now, and drop the tools nobody
    refreshed; a Redis failure is logged, not raised (a worker that cannot publish
    still runs its jobs; producers then check less). `quiet`: a refresh, logged at
    debug level."""
    described = registry.describe()
    if not described:
        return
    now = time.time() if now is None else now
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.hset(keys.tool_catalog(), mapping={d["name"]: json.dumps(d) for d in described})
        pipe.hset(keys.tool_catalog_seen(), mapping={d["name"]: repr(now) for d in described})
        pipe.hgetall(keys.tool_catalog_seen())
        pipe.hkeys(keys.tool_catalog())
        *_, seen, listed = pipe.execute()
        fresh = seen_lately(seen, now)
        stale = {text(name) for name in [*listed, *seen]} - fresh
        if stale:  # and tools listed before the catalog kept times
            pipe.hdel(keys.tool_catalog(), *stale)
            pipe.hdel(keys.tool_catalog_seen(), *stale)
            pipe.execute()
    except Exception as exc:  # redis-py's errors; the worker must start regardless
        log.warning("tools.publish_failed", error=str(exc), tools=len(described))
        return
    (log.debug if quiet else log.info)(
        "tools.published", tools=[d["name"] for d in described], dropped=sorted(stale)
    )


def seen_lately(seen: dict[Any, Any], now: float) -> set[str]:
    """The names of a name -> last-seen hash seen within `STALE_AFTER` of `now` (the
    chain catalog's too)."""
    fresh = set()
    for name, at in seen.items():
        try:
            if now - float(text(at)) <= STALE_AFTER:
                fresh.add(text(name))
        except ValueError:
            continue
    return fresh


def publish_to(redis_url: str | None, registry: ToolRegistry) -> None:
    """`publish` over a connection of its own, closed after (a worker's start)."""
    if not redis_url:
        return
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        publish(client, registry)
    finally:
        client.close()


def published_names(redis: Any, *, now: float | None = None) -> set[str] | None:
    """The tool names workers published lately, or None when no worker has lately."""
    names = seen_lately(
        redis.hgetall(keys.tool_catalog_seen()), time.time() if now is None else now
    )
    return names or None


def published(redis: Any, *, now: float | None = None) -> list[dict[str, Any]]:
    """Every lately published tool's description, sorted by name (empty when none)."""
    fresh = published_names(redis, now=now) or set()
    found = {text(name): raw for name, raw in redis.hgetall(keys.tool_catalog()).items()}
    return [json.loads(found[name]) for name in sorted(fresh) if name in found]
