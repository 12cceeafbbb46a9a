"""The tools the workers have, published in Redis so producers can refuse unknown ones.

A producer (the CLI, a web app, the gateway) need not import the workers' tool modules,
yet a job that names a tool no worker has should be refused when it is submitted, not
fail minutes later inside a worker. So every worker publishes its registry when it
starts (`worker.signals`): a hash of tool name -> description (the JSON `runq tools
--json` prints, schema included), and producers check a job's tools against its names.

Workers add to the hash and never remove from it: workers with different tool modules
(a `tools` queue of its own, a rolling deploy) publish the union. A tool dropped from
every worker stays listed until the key is deleted (`DEL runq:toolcatalog`, then restart
the workers); a job naming it then gets the worker's "unknown tool" error output, as it
did before this check existed. With no worker published yet, producers check nothing.
"""

from __future__ import annotations

import json
from typing import Any

import structlog

from runq.runs import keys
from runq.runs.replies import text
from runq.runs.tools import ToolRegistry

log = structlog.get_logger("runq.tools")


def publish(redis: Any, registry: ToolRegistry) -> None:
    """Add this process's tools to the catalog; a Redis failure is logged, not raised
    (a worker that cannot publish still runs its jobs; producers then check less)."""
    described = registry.describe()
    if not described:
        return
    try:
        redis.hset(keys.tool_catalog(), mapping={d["name"]: json.dumps(d) for d in described})
    except Exception as exc:  # redis-py's errors; the worker must start regardless
        log.warning("tools.publish_failed", error=str(exc), tools=len(described))
        return
    log.info("tools.published", tools=[d["name"] for d in described])


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


def published_names(redis: Any) -> set[str] | None:
    """The tool names workers published, or None when no worker has published any."""
    names = {text(name) for name in redis.hkeys(keys.tool_catalog())}
    return names or None


def published(redis: Any) -> list[dict[str, Any]]:
    """Every published tool's description, sorted by name (empty when none)."""
    found = redis.hgetall(keys.tool_catalog())
    return [json.loads(found[name]) for name in sorted(found, key=text)]
