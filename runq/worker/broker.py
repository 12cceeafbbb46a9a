"""kombu's Redis transport, with one redis-py client per channel instead of one per call.

When kombu's Redis channel is not handed a client, `Channel.conn_or_acquire()` builds a
new `redis.Redis` for the call: every task sent, every acknowledgement. redis-py's
constructor copies its table of about 170 response callbacks into a case-insensitive
dict, upper-casing every name, so each of those clients costs about a tenth of a
millisecond of CPU, and a job with one tool round makes about twenty of them (measured
with cProfile on a poll-mode worker: 2,029 for 100 jobs; docs/benchmarks.md).

A `redis.Redis` built on a connection pool holds no connection of its own: each command
takes one from the pool and gives it back. So one client per channel and pool serves
every caller, from any thread, as kombu's own `Channel.client` already does for its
asynchronous pool. Nothing else changes: the same pool, the same commands, the same
acknowledgement emulation.

Celery is told to use it by name, `broker_transport = "runq.worker.broker:Transport"`
(`runq.config.celery`), when the broker is a `redis://` URL; any other broker keeps its
own transport. kombu imports it by that name in workers and producers alike.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    """A Redis channel that reuses its synchronous client."""

    _sync_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._sync_client
        if client is None or client.connection_pool is not self.pool:
            # First use, or the channel's pool was replaced: a client on the new pool.
            client = self._sync_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel
