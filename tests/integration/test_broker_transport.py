"""runq's Redis transport for kombu (runq.worker.broker) on a real Redis: Celery apps use
it for a `redis://` broker, a channel reuses one redis-py client for its calls, and
messages still go and come back acknowledged."""

from __future__ import annotations

import pytest
from kombu import Connection, Exchange, Queue

from runq.config.celery import REDIS_TRANSPORT, transport_for
from runq.worker.broker import Transport
from runq.worker.celery_app import make_app

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
