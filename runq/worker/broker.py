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

Its acknowledgement bookkeeping (`QoS`) also sends its two writes as a plain pipeline
rather than a `MULTI`/`EXEC` transaction: see `QoS.pipe_or_acquire`.

Celery is told to use it by name, `broker_transport = "runq.worker.broker:Transport"`
(`runq.config.celery`), when the broker is a `redis://` URL; any other broker keeps its
own transport. kombu imports it by that name in workers and producers alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from kombu.transport import redis as kombu_redis


class QoS(kombu_redis.QoS):
    """kombu's acknowledgement emulation, its bookkeeping sent without a transaction.

    With `acks_late`, kombu keeps a copy of every reserved message (`HSET unacked`) and
    its time (`ZADD unacked_index`) so that a message whose worker died is restored
    after the visibility timeout, and drops both at the acknowledgement. It sends each
    pair as `MULTI` / two writes / `EXEC`: four commands where two do, eight a task.

    The pair needs no transaction. The restore only takes entries older than the
    visibility timeout (an hour), so it never sees a pair being written; and a pair
    half removed (a connection lost between the `ZREM` and the `HDEL`) leaves only an
    unindexed copy that nothing restores, which is the acknowledgement's intent anyway.
    The restore itself (`restore_by_tag`) passes its own transactional pipeline and is
    unchanged.
    """

    @contextmanager
    def pipe_or_acquire(self, pipe: Any = None, client: Any = None) -> Iterator[Any]:
        if pipe:
            yield pipe
        else:
            with self.channel.conn_or_acquire(client) as client:
                yield client.pipeline(transaction=False)


class Channel(kombu_redis.Channel):
    """A Redis channel that reuses its synchronous client."""

    QoS = QoS
    _sync_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._sync_client
        if self._pool is None and self.connection.client is None:
            return self._client_after_the_transport_closed(client)
        if client is None or client.connection_pool is not self.pool:
            # First use, or the channel's pool was replaced: a client on the new pool.
            client = self._sync_client = super()._create_client()
        return client

    def _client_after_the_transport_closed(self, client: Any) -> Any:
        """A client for a channel closed after its transport let go of its `Connection`.

        Celery's consumer, on a lost broker connection, `collect()`s the connection and
        then `close()`s it, ignoring only connection errors. When the first close of the
        channel is cut short by the lost connection, the second one restores the
        unacknowledged messages with a fresh client; kombu builds its pool from the
        transport's `Connection`, which `collect()` has set to None, and the
        `AttributeError` that follows is unrecoverable for Celery: the worker exits
        (found by `bench.chaos --mode webhook` with a Redis restart). The client this
        channel already has still reaches Redis, and the restore goes on with it;
        without one, a connection error, which the close ignores: the messages then stay
        in `unacked` until the visibility timeout brings them back, and runq's leases
        re-drive their jobs before that.
        """
        if client is not None:
            return client
        raise redis.exceptions.ConnectionError("the broker connection is closed")


class Transport(kombu_redis.Transport):
    Channel = Channel
