"""`runq metrics`: a Prometheus endpoint for the metrics every worker records in Redis.

Workers do not serve metrics themselves (prefork children each hold a fraction of the
work); they add to one Redis hash (see `runs.metrics`). This module renders that hash
with a dedicated `CollectorRegistry`, either as a standalone HTTP server
(`runq metrics --port 9808`) or as an ASGI app the HTTP gateway mounts at `/metrics`
(`metrics_asgi_app`). Besides the `runq_*` job metrics it reports the backlog of the
runq queues (`runq_queue_length{queue}`), the first thing to look at when scaling.

The metrics add up every tenant's jobs, so they are an operator's view: with
`RUNQ_METRICS_TOKEN` set, both endpoints answer only `Authorization: Bearer <token>`
(Prometheus: `authorization: {credentials: ...}` in the scrape config). The gateway's
`/metrics` requires it outside `--demo`; `runq metrics` requires it to listen anywhere
but 127.0.0.1.

Flower serves a `/metrics` of its own (task events seen by Flower: `flower_*`); the two
complement each other.
"""

from __future__ import annotations

import hmac
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis
from prometheus_client import CollectorRegistry, make_asgi_app, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric

from runq.config.celery import QUEUE_RUNS, QUEUE_TOOLS
from runq.config.settings import METRICS_PORT
from runq.runs import keys
from runq.runs.metrics import Metrics

DEFAULT_PORT = METRICS_PORT
TOKEN_VAR = "RUNQ_METRICS_TOKEN"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def metrics_token() -> str | None:
    """The bearer token a scrape must present (`RUNQ_METRICS_TOKEN`), or None."""
    return os.environ.get(TOKEN_VAR) or None


def token_matches(expected: str, authorization: str | None) -> bool:
    """Whether an `Authorization` header carries `Bearer <expected>` (constant time)."""
    scheme, _, presented = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


QUEUES = (QUEUE_RUNS, QUEUE_TOOLS)


def priority_lists(queue: str) -> list[str]:
    """The Redis lists a queue's messages wait in, one per priority step (kombu's names):
    a queue's length is the sum of theirs, not the length of the list named `queue`.
    Here, not in `config.celery`: the core must not import kombu, even lazily."""
    from kombu.transport.redis import PRIORITY_STEPS, Channel

    return [f"{queue}{Channel.sep}{step}" if step else queue for step in PRIORITY_STEPS]


class QueueCollector:
    """What waits for a worker: `runq_queue_length{queue}` (messages in each runq queue,
    Redis broker), `runq_wake_queue_length` (steps due now that no worker's wake runner
    has taken yet: woken polls and due safety looks, which are not Celery messages,
    `runs.wakes`), `runq_delayed_steps` (steps waiting for their time in Redis) and
    `runq_delayed_steps_overdue` (of those, due more than `OVERDUE` seconds ago: every
    worker's pump sends them within a second, so a value that stays above 0 means no
    worker is running, or all are stuck)."""

    OVERDUE = 10.0

    def __init__(self, redis_client: redis.Redis, queues: Sequence[str] = QUEUES) -> None:
        self.redis = redis_client
        self.queues = tuple(queues)

    def describe(self) -> Iterator[Metric]:
        yield from self._families({}, 0, 0, 0)

    def collect(self) -> Iterator[Metric]:
        pipe = self.redis.pipeline(transaction=False)
        lists = {queue: priority_lists(queue) for queue in self.queues}
        for names in lists.values():
            for name in names:
                pipe.llen(name)
        pipe.llen(keys.wakes())
        pipe.zcard(keys.delayed())
        pipe.zcount(keys.delayed(), "-inf", time.time() - self.OVERDUE)
        *lengths, wakes, delayed, overdue = pipe.execute()
        totals, at = {}, 0
        for queue, names in lists.items():  # every priority's list counts (kombu's steps)
            totals[queue], at = sum(lengths[at : at + len(names)]), at + len(names)
        yield from self._families(totals, wakes, delayed, overdue)

    def _families(
        self, lengths: dict[str, int], wakes: int, delayed: int, overdue: int
    ) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "runq_queue_length", "Messages waiting in a runq queue (not yet taken by a worker).",
            labels=("queue",),
        )  # fmt: skip
        for queue, length in lengths.items():
            family.add_metric([queue], float(length))
        yield family
        yield GaugeMetricFamily(
            "runq_wake_queue_length",
            "Steps due now (woken polls, safety looks) that no worker has taken yet.",
            value=float(wakes),
        )
        yield GaugeMetricFamily(
            "runq_delayed_steps", "Steps waiting in Redis for their time (long waits).",
            value=float(delayed),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "runq_delayed_steps_overdue",
            f"Delayed steps due more than {self.OVERDUE:g}s ago (no worker sends them).",
            value=float(overdue),
        )


class TenancyCollector:
    """Budgets and admission (`runs.budgets`, `runs.fairness`; docs/tenancy.md), as
    `runq budgets` shows them: `runq_budget_{limit,spent,reserved,remaining}{budget,unit}`
    for the current period, and `runq_tenant_{waiting,in_flight}_jobs{tenant}`."""

    FIGURES = ("limit", "spent", "reserved", "remaining")

    def __init__(self, redis_client: redis.Redis, budgets: dict[str, Any]) -> None:
        from runq.runs.budgets import BudgetBook
        from runq.runs.fairness import Admission

        self.admission = Admission(redis_client, budgets=BudgetBook(redis_client, budgets))

    def describe(self) -> Iterator[Metric]:
        yield from self._families([], {}, {})

    def collect(self) -> Iterator[Metric]:
        states = self.admission.budgets.states(time.time())
        waiting = self.admission.waiting_by_tenant()
        yield from self._families(states, waiting, self.admission.inflight_by_tenant())

    def _families(
        self, states: list[dict[str, Any]], waiting: dict[str, int], flying: dict[str, int]
    ) -> Iterator[GaugeMetricFamily]:
        for figure in self.FIGURES:
            family = GaugeMetricFamily(
                f"runq_budget_{figure}",
                f"A budget's {figure} in its current period (unit: usd or tokens).",
                labels=("budget", "unit"),
            )
            for state in states:
                for unit in ("usd", "tokens"):
                    value = state[unit][figure]
                    if state[unit]["limit"] is not None and value is not None:
                        family.add_metric([state["scope"], unit], float(value))
            yield family
        for name, counts, what in (
            ("runq_tenant_waiting_jobs", waiting, "Jobs waiting for their tenant's turn."),
            ("runq_tenant_in_flight_jobs", flying, "Jobs admitted and not yet ended."),
        ):
            family = GaugeMetricFamily(name, what, labels=("tenant",))
            for tenant, count in counts.items():
                family.add_metric([tenant], float(count))
            yield family


def build_registry(
    redis_client: redis.Redis,
    prices: dict[str, tuple[float, float]] | None = None,
    *,
    queues: Sequence[str] = QUEUES,
    budgets: dict[str, Any] | None = None,
) -> CollectorRegistry:
    """A registry holding only runq's Redis-backed collectors (no process metrics);
    `budgets`: RUNQ_BUDGETS (None: read from the settings)."""
    registry = CollectorRegistry()
    registry.register(Metrics(redis_client, prices).collector())
    if queues:
        registry.register(QueueCollector(redis_client, queues))
    if budgets is None:
        from runq.config.settings import get_settings

        budgets = get_settings().budgets
    registry.register(TenancyCollector(redis_client, budgets))
    return registry


def metrics_asgi_app(redis_client: redis.Redis, **options: Any) -> Callable[..., Any]:
    """An ASGI app serving the metrics; the gateway mounts it: `app.mount("/metrics", ...)`."""
    return make_asgi_app(registry=build_registry(redis_client, **options))


def metrics_wsgi_app(redis_client: redis.Redis, **options: Any) -> Callable[..., Any]:
    """The same, as a WSGI app; a scrape while Redis is unreachable gets a 503, not a
    traceback per scrape (Prometheus marks the target down either way)."""
    app = make_wsgi_app(registry=build_registry(redis_client, **options))

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        try:
            return app(environ, start_response)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            headers = [("Content-Type", "text/plain; charset=utf-8"), ("Retry-After", "5")]
            start_response("503 Service Unavailable", headers)
            return [f"runq metrics: Redis cannot be reached ({exc})\n".encode()]

    return serve


def _guarded(app: Callable[..., Any], token: str) -> Callable[..., Any]:
    """`app` answering 401 to a scrape without `Authorization: Bearer <token>`."""

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not token_matches(token, environ.get("HTTP_AUTHORIZATION")):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", "Bearer")],
            )
            return [f"runq metrics: send Authorization: Bearer ${TOKEN_VAR}\n".encode()]
        return app(environ, start_response)

    return serve


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not worth a log line each."""


class MetricsServer:
    """The standalone endpoint: `/metrics` on `host:port` (port 0 picks a free one)."""

    def __init__(self, redis_client: redis.Redis, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None, **options: Any) -> None:  # fmt: skip
        app = metrics_wsgi_app(redis_client, **options)
        if token is not None:
            app = _guarded(app, token)
        self.httpd = make_server(
            host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        self.host = host
        self.port = int(self.httpd.server_port)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> MetricsServer:
        """Serve from a background thread (tests, embedding)."""
        self._thread = threading.Thread(target=self.serve_forever, name="runq-metrics",
                                        daemon=True)  # fmt: skip
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def run_metrics(host: str, port: int, redis_url: str | None = None) -> int:
    """`runq metrics`: serve in the foreground until Ctrl-C or SIGTERM."""
    if redis_url is None:
        from runq.config.settings import get_settings
        from runq.producers.client.sync import require_redis_url

        # REDIS_URL, or the `runq up` of this folder
        redis_url = require_redis_url(get_settings(), "read metrics from")
    token = metrics_token()
    if token is None and host not in LOOPBACK:
        print(
            f"runq metrics: refusing to serve every tenant's figures on {host} without "
            f"credentials; set {TOKEN_VAR} (scrapes then send Authorization: Bearer <it>) "
            "or listen on 127.0.0.1",
            file=sys.stderr,
        )
        return 2
    client = redis.Redis.from_url(redis_url, health_check_interval=10)
    try:
        server = MetricsServer(client, host, port, token=token)
    except OSError as exc:
        print(f"runq metrics: cannot bind {host}:{port}: {exc}", file=sys.stderr)
        return 1

    def _stop(*_: Any) -> None:
        threading.Thread(target=server.httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    print(f"metrics listening on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0
