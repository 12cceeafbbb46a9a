"""runq's Redis transport for kombu (runq.worker.broker) on a real Redis: Celery apps use
it for a `redis://` broker, a channel reuses one redis-py client for its calls, and
messages still go and come back acknowledged."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis
from kombu import Connection, Exchange, Queue

from runq.config.celery import REDIS_TRANSPORT, transport_for
from runq.worker.broker import Transport
from runq.worker.celery_app import make_app
from runq.worker.launcher import EmbeddedRedis

pytestmark = pytest.mark.integration


def own_db(redis_url: str) -> str:
    return redis_url.rsplit("/", 1)[0] + "/6"  # unit tests' database: no worker reads it


def test_celery_apps_use_it_for_a_redis_broker_only(redis_url: str) -> None:
    assert transport_for("redis://127.0.0.1:6379/0") == REDIS_TRANSPORT
    assert transport_for("amqp://guest@localhost//") is None
    app = make_app(own_db(redis_url))
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, Transport)


def test_a_channel_reuses_its_client_and_messages_still_flow(redis_url: str) -> None:
    queue = Queue("runq-transport-test", Exchange("runq-transport-test"), "t")
    with Connection(own_db(redis_url), transport=REDIS_TRANSPORT) as conn:
        channel = conn.default_channel
        first = channel._create_client()
        assert channel._create_client() is first  # not a new redis.Redis per call
        assert channel._create_client(asynchronous=True) is not first  # its own pool
        producer = conn.Producer(serializer="json")
        for n in range(3):
            producer.publish({"n": n}, exchange=queue.exchange, routing_key="t",
                             declare=[queue])  # fmt: skip
        got: list[int] = []
        with conn.Consumer(queue, callbacks=[lambda body, msg: (got.append(body["n"]),
                                                                msg.ack())]):  # fmt: skip
            while len(got) < 3:
                conn.drain_events(timeout=5)
        assert sorted(got) == [0, 1, 2]
        # Acknowledged: nothing is left unacked for a redelivery.
        assert first.hlen("unacked") == 0


def _monitored(url: str, db: int, lines: list[str], stop: threading.Event) -> None:
    """Collect the commands Redis runs on database `db` until `stop` is set."""
    client = redis.Redis.from_url(url)
    with client.monitor() as monitor:
        for entry in monitor.listen():
            if entry["db"] == db:
                lines.append(entry["command"].split(" ", 1)[0].upper())
            if stop.is_set():
                return


def test_acknowledgements_keep_their_bookkeeping_without_transactions(redis_url: str) -> None:
    queue = Queue("runq-transport-acks", Exchange("runq-transport-acks"), "a")
    lines: list[str] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_monitored, args=(redis_url, 6, lines, stop), daemon=True)
    watcher.start()
    with Connection(own_db(redis_url), transport=REDIS_TRANSPORT) as conn:
        client = conn.default_channel._create_client()
        client.delete("unacked", "unacked_index")
        producer = conn.Producer(serializer="json")
        for n in range(2):
            producer.publish({"n": n}, exchange=queue.exchange, routing_key="a",
                             declare=[queue])  # fmt: skip
        held: list[int] = []

        def take(body: dict[str, int], msg: object) -> None:
            held.append(body["n"])
            # While a message is reserved, its copy waits for a redelivery.
            assert client.hlen("unacked") == 1 and client.zcard("unacked_index") == 1
            msg.ack()  # type: ignore[attr-defined]

        with conn.Consumer(queue, callbacks=[take], prefetch_count=1):
            while len(held) < 2:
                conn.drain_events(timeout=5)
        assert client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0
        client.ping()  # the last command the watcher waits for
    # MONITOR's feed can fall seconds behind on a loaded host: wait for the PING itself
    # (at once, normally), so a late feed is not mistaken for missing commands.
    deadline = time.monotonic() + 60
    while "PING" not in lines and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    client.ping()
    watcher.join(5)
    assert "PING" in lines, f"MONITOR's feed stopped after {lines}"
    # From the first delivery on (the queue's declaration has transactions of its own):
    # the copy and its removal were each written for the 2 messages...
    delivered = lines[lines.index("BRPOP") :]
    for command in ("ZADD", "HSET", "ZREM", "HDEL"):
        assert delivered.count(command) == 2, (command, delivered)
    # ...in plain pipelines: no MULTI / EXEC around them.
    assert "MULTI" not in delivered and "EXEC" not in delivered, delivered


def test_a_message_never_acknowledged_comes_back(redis_url: str) -> None:
    """The restore path (a transaction of its own) still brings back an unacked message."""
    queue = Queue("runq-transport-restore", Exchange("runq-transport-restore"), "r")
    with Connection(own_db(redis_url), transport=REDIS_TRANSPORT) as conn:
        producer = conn.Producer(serializer="json")
        producer.publish({"n": 7}, exchange=queue.exchange, routing_key="r", declare=[queue])
        seen: list[int] = []
        with conn.Consumer(queue, callbacks=[lambda body, msg: seen.append(body["n"])],
                           prefetch_count=1):  # fmt: skip
            while not seen:
                conn.drain_events(timeout=5)
    # The connection closed with the message unacknowledged: kombu restores it.
    with Connection(own_db(redis_url), transport=REDIS_TRANSPORT) as conn:
        again: list[int] = []
        with conn.Consumer(queue, callbacks=[lambda body, msg: (again.append(body["n"]),
                                                                msg.ack())]):  # fmt: skip
            while not again:
                conn.drain_events(timeout=5)
        assert again == [7]
        assert conn.default_channel._create_client().hlen("unacked") == 0


def _holding_an_unacked_message(url: str, queue: Queue) -> Connection:
    """A consumer's connection with one message received and not acknowledged."""
    conn = Connection(url, transport=REDIS_TRANSPORT)
    conn.Producer(serializer="json").publish(
        {"n": 1}, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue]
    )
    held: list[int] = []
    consumer = conn.Consumer(queue, callbacks=[lambda body, msg: held.append(body["n"])],
                             prefetch_count=1)  # fmt: skip
    consumer.consume()
    while not held:
        conn.drain_events(timeout=5)
    return conn


def _waiting(url: str, queue: Queue) -> tuple[int, int]:
    """(messages in the queue, messages kept unacknowledged) on the Redis at `url`."""
    client = redis.Redis.from_url(url)
    try:
        return int(client.llen(queue.name)), int(client.hlen("unacked"))
    finally:
        client.close()


def test_a_lost_broker_connection_closes_without_killing_the_worker(tmp_path: Path) -> None:
    """Celery 5.7's consumer, on a lost broker connection, first `collect()`s the
    connection, which drops the transport's reference to its `Connection`; when the
    channel's close is cut short there (its pending BRPOP read fails), it is left open.
    Celery then `close()`s the connection, ignoring only connection errors, and that
    close restores the unacked messages through a new client, whose pool kombu built
    from the dropped reference: `AttributeError`, unrecoverable for Celery, and the
    worker exited (found by `bench.chaos --mode webhook`, at its Redis restart).
    The close must end quietly, and the message must wait in Redis for its restore."""
    from kombu.common import ignore_errors

    queue = Queue("runq-transport-lost", Exchange("runq-transport-lost"), "l")
    server = EmbeddedRedis(tmp_path, appendonly=True).start()
    try:
        conn = _holding_an_unacked_message(server.url, queue)
        server.stop()
        conn._do_close_transport()  # where `collect()` leaves it (see the docstring)
        ignore_errors(conn, conn.close)  # Celery's close: it raised AttributeError
        server.start()
        # Redis was down at the close: the message is still kept as unacknowledged, for
        # the visibility timeout's restore (and the job's lease) to bring back.
        assert _waiting(server.url, queue) == (0, 1)
    finally:
        server.stop()


def test_a_close_after_the_transport_let_go_still_restores_unacked_messages(
    redis_url: str,
) -> None:
    """The same close with Redis up: the channel's own client restores the message."""
    url = own_db(redis_url)
    queue = Queue("runq-transport-let-go", Exchange("runq-transport-let-go"), "g")
    redis.Redis.from_url(url).delete("unacked", "unacked_index", queue.name)
    conn = _holding_an_unacked_message(url, queue)
    assert _waiting(url, queue) == (0, 1)
    conn._do_close_transport()
    conn.close()
    assert _waiting(url, queue) == (1, 0)
