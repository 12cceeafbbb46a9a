"""runs.metrics on fakeredis: what a record call stores, and what Prometheus sees."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import fakeredis
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runq.errors import ConfigurationError
from runq.producers.ops.metrics_server import MetricsServer, QueueCollector, build_registry
from runq.runs import keys
from runq.runs.metrics import DEFAULT_PRICES, Metrics, load_prices, price_for
from runq.runs.wakes import WakeQueue

PRICES = {"m-cheap": (1.0, 2.0), "m-dear": (10.0, 40.0)}


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def metrics(r: fakeredis.FakeRedis) -> Metrics:
    return Metrics(r, prices=PRICES)


def scrape(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Render through prometheus_client and parse the text back: what Prometheus reads."""
    registry = CollectorRegistry()
    registry.register(m.collector())
    text = generate_latest(registry).decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_job_finished_counts_status_source_tokens_and_cost(metrics: Metrics) -> None:
    metrics.job_finished(status="succeeded", source="responses:m-cheap", model="m-cheap",
                         latency_s=1.5, input_tokens=1000, output_tokens=500)  # fmt: skip
    metrics.job_finished(status="succeeded", source="responses:m-cheap", model="m-cheap",
                         latency_s=0.4, input_tokens=10, output_tokens=20)  # fmt: skip
    metrics.job_finished(status="failed", source=None, model="m-dear",
                         latency_s=30.0, input_tokens=0, output_tokens=0)  # fmt: skip
    s = scrape(metrics)
    ok = (("source", "responses:m-cheap"), ("status", "succeeded"))
    assert s[("runq_jobs_total", ok)] == 2
    assert s[("runq_jobs_total", (("source", "none"), ("status", "failed")))] == 1
    assert s[("runq_tokens_total", (("direction", "input"), ("model", "m-cheap")))] == 1010
    assert s[("runq_tokens_total", (("direction", "output"), ("model", "m-cheap")))] == 520
    # (1010 * 1.0 + 520 * 2.0) / 1e6
    assert s[("runq_cost_usd_total", (("model", "m-cheap"),))] == pytest.approx(0.00205)
    assert s[("runq_cost_usd_total", (("model", "m-dear"),))] == 0
    assert s[("runq_job_latency_seconds_count", ())] == 3
    assert s[("runq_job_latency_seconds_sum", ())] == pytest.approx(31.9)


def _run_waited(metrics: Metrics, seconds: float) -> None:
    metrics.job_finished(status="succeeded", source="s", model="m", latency_s=seconds + 1,
                         input_tokens=0, output_tokens=0, run_wait_s=seconds)  # fmt: skip


def test_histogram_buckets_are_cumulative(metrics: Metrics) -> None:
    for value in (0.1, 0.3, 0.3, 7.0, 10_000.0):
        _run_waited(metrics, value)
    s = scrape(metrics)

    def bucket(le: str) -> float:
        return s[("runq_run_wait_seconds_bucket", (("le", le),))]

    assert bucket("0.25") == 1
    assert bucket("0.5") == 3
    assert bucket("5.0") == 3
    assert bucket("10.0") == 4
    assert bucket("600.0") == 4
    assert bucket("+Inf") == 5
    assert s[("runq_run_wait_seconds_count", ())] == 5
    assert s[("runq_run_wait_seconds_sum", ())] == pytest.approx(10_007.7)


def test_one_observation_is_one_bucket_field(metrics: Metrics, r: fakeredis.FakeRedis) -> None:
    """Per-bucket storage: recording touches one bucket, however many bounds there are."""
    metrics.tool_call(name="calc", seconds=3.0, error=None)
    fields = {f.decode(): v for f, v in r.hgetall(keys.metrics()).items()}
    assert fields == {'tool_latency_seconds_bucket{"le":"5.0","tool":"calc"}': b"1",
                      'tool_latency_seconds_sum{"tool":"calc"}': b"3"}  # fmt: skip


def test_tool_calls_errors_retries_and_ratelimit_waits(metrics: Metrics) -> None:
    metrics.tool_call(name="calculator", seconds=0.02, error=None)
    metrics.tool_call(name="calculator", seconds=0.3, error="invalid_arguments")
    metrics.tool_call(name="clock", seconds=0.001, error=None)
    metrics.retry(link="responses:m-cheap", code="rate_limited")
    metrics.retry(link="responses:m-cheap", code="rate_limited")
    metrics.retry(link="chat:m-dear", code="server_error")
    metrics.ratelimit_wait(link="responses:m-cheap", seconds=1.25)
    metrics.ratelimit_wait(link="responses:m-cheap", seconds=0.5)
    s = scrape(metrics)
    calc = (("tool", "calculator"),)
    assert s[("runq_tool_latency_seconds_count", calc)] == 2
    assert s[("runq_tool_latency_seconds_bucket", (("le", "0.025"), ("tool", "calculator")))] == 1
    assert s[("runq_tool_latency_seconds_bucket", (("le", "0.5"), ("tool", "calculator")))] == 2
    assert s[("runq_tool_latency_seconds_count", (("tool", "clock"),))] == 1
    err = (("error", "invalid_arguments"), ("tool", "calculator"))
    assert s[("runq_tool_errors_total", err)] == 1
    assert not any(name == "runq_tool_errors_total" and ("tool", "clock") in labels
                   for name, labels in s)  # fmt: skip
    assert s[("runq_retries_total", (("code", "rate_limited"), ("link", "responses:m-cheap")))] == 2
    assert s[("runq_retries_total", (("code", "server_error"), ("link", "chat:m-dear")))] == 1
    assert s[("runq_ratelimit_wait_seconds_total", (("link", "responses:m-cheap"),))] == 1.75


def test_every_family_is_exposed_before_any_record(metrics: Metrics) -> None:
    text = generate_latest(_registry(metrics)).decode()
    for name in ("runq_jobs_total", "runq_job_latency_seconds", "runq_run_wait_seconds",
                 "runq_tool_latency_seconds", "runq_tool_errors_total", "runq_retries_total",
                 "runq_ratelimit_wait_seconds_total", "runq_tokens_total",
                 "runq_cost_usd_total"):  # fmt: skip
        assert f"# TYPE {name} " in text
    assert 'runq_job_latency_seconds_bucket{le="+Inf"} 0.0' in text


def test_workers_add_up_across_processes(r: fakeredis.FakeRedis) -> None:
    """Two Metrics objects (two prefork children) on one Redis: one total."""
    a, b = Metrics(r, prices=PRICES), Metrics(r, prices=PRICES)
    threads = [threading.Thread(target=lambda m=m: [m.retry(link="l", code="c") for _ in range(50)])
               for m in (a, b, a, b)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert scrape(Metrics(r))[("runq_retries_total", (("code", "c"), ("link", "l")))] == 200


def test_registering_does_not_touch_redis() -> None:
    class Exploding(fakeredis.FakeRedis):
        def hgetall(self, *args: object, **kwargs: object) -> dict[bytes, bytes]:
            raise AssertionError("describe() must not read Redis")

    collector = Metrics(Exploding(), prices={}).collector()
    CollectorRegistry().register(collector)  # calls describe(), which must not raise
    names = {family.name for family in collector.describe()}  # type: ignore[attr-defined]
    assert {"runq_jobs", "runq_job_latency_seconds", "runq_cost_usd"} <= names


def test_record_survives_a_redis_outage() -> None:
    """Metrics are best effort: a failing Redis never fails the job step recording them."""
    import redis

    class DownPipeline:
        def __getattr__(self, _name: str) -> object:
            return lambda *a, **k: None

        def execute(self) -> None:
            raise redis.ConnectionError("Redis is down")

    class Down:
        def pipeline(self, transaction: bool = True) -> DownPipeline:
            return DownPipeline()

    Metrics(Down(), prices={}).retry(link="l", code="c")  # type: ignore[arg-type]  # no raise


def test_unknown_label_values_and_long_labels_are_bounded(metrics: Metrics) -> None:
    metrics.tool_call(name="x" * 500, seconds=0.1, error="e" * 500)
    s = scrape(metrics)
    (labels,) = [dict(lb) for name, lb in s if name == "runq_tool_errors_total"]
    assert len(labels["tool"]) == 120 and len(labels["error"]) == 120


def test_reset_forgets_everything(metrics: Metrics, r: fakeredis.FakeRedis) -> None:
    metrics.retry(link="l", code="c")
    metrics.reset()
    assert not r.exists(keys.metrics())


# -- prices ------------------------------------------------------------------------------
def test_load_prices_defaults_and_overrides() -> None:
    assert load_prices(environ={}) == DEFAULT_PRICES
    prices = load_prices(environ={"RUNQ_PRICES": json.dumps({"gpt-5": [2, 20], "local": [0, 0]})})
    assert prices["gpt-5"] == (2.0, 20.0)
    assert prices["local"] == (0.0, 0.0)
    assert prices["gpt-5-mini"] == DEFAULT_PRICES["gpt-5-mini"]


def test_load_prices_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNQ_PRICES", '{"m": [1.5, 3]}')
    assert load_prices()["m"] == (1.5, 3.0)
    assert Metrics(fakeredis.FakeRedis()).prices["m"] == (1.5, 3.0)


@pytest.mark.parametrize(
    "raw",
    ["not json", "[1, 2]", '{"m": [1]}', '{"m": [1, -2]}', '{"m": "1,2"}', '{"m": [true, 1]}'],
)
def test_bad_prices_name_the_variable(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="RUNQ_PRICES"):
        load_prices(raw)


def test_dated_model_snapshots_use_the_base_price() -> None:
    assert price_for("gpt-5-mini-2025-08-07", DEFAULT_PRICES) == DEFAULT_PRICES["gpt-5-mini"]
    assert price_for("gpt-5-mini-custom", DEFAULT_PRICES) is None
    assert price_for("unknown", DEFAULT_PRICES) is None


# -- serving -----------------------------------------------------------------------------
def _registry(m: Metrics) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(m.collector())
    return registry


def test_queue_lengths(r: fakeredis.FakeRedis) -> None:
    r.rpush("runs", "a", "b", "c")
    r.rpush("tools", "x")
    registry = CollectorRegistry()
    registry.register(QueueCollector(r))
    assert registry.get_sample_value("runq_queue_length", {"queue": "runs"}) == 3
    assert registry.get_sample_value("runq_queue_length", {"queue": "tools"}) == 1
    assert registry.get_sample_value("runq_delayed_steps") == 0


def test_wake_queue_length_counts_the_steps_no_runner_took(r: fakeredis.FakeRedis) -> None:
    """Woken polls are not Celery messages: without this gauge a worker that cannot keep
    up with its webhooks shows an empty `runs` queue."""
    registry = CollectorRegistry()
    registry.register(QueueCollector(r))
    assert registry.get_sample_value("runq_wake_queue_length") == 0
    wakes = WakeQueue(r)
    wakes.wake_poll("job_a", 3)
    wakes.push("job_b", "look", 1)
    assert registry.get_sample_value("runq_wake_queue_length") == 2
    assert registry.get_sample_value("runq_queue_length", {"queue": "runs"}) == 0
    assert wakes.take(0.1) is not None  # a runner takes one: it no longer waits
    assert registry.get_sample_value("runq_wake_queue_length") == 1


def test_delayed_steps_and_the_overdue_ones(r: fakeredis.FakeRedis) -> None:
    now = time.time()
    r.zadd(keys.delayed(), {"job_a|poll|1": now + 30, "job_b|start|2": now - 60})
    registry = CollectorRegistry()
    registry.register(QueueCollector(r))
    assert registry.get_sample_value("runq_delayed_steps") == 2
    assert registry.get_sample_value("runq_delayed_steps_overdue") == 1  # no pump ran


def test_standalone_server_serves_metrics(r: fakeredis.FakeRedis) -> None:
    Metrics(r, prices=PRICES).job_finished(
        status="succeeded", source="s", model="m-cheap", latency_s=1, input_tokens=1,
        output_tokens=1,
    )  # fmt: skip
    server = MetricsServer(r, "127.0.0.1", 0, prices=PRICES).start()
    try:
        with urllib.request.urlopen(server.url, timeout=5) as resp:
            body = resp.read().decode()
            assert resp.headers["Content-Type"].startswith("text/plain")
    finally:
        server.stop()
    assert 'runq_jobs_total{source="s",status="succeeded"} 1.0' in body
    assert 'runq_queue_length{queue="runs"} 0.0' in body
    assert "process_cpu_seconds_total" not in body  # a dedicated registry, no process noise


def test_a_scrape_while_redis_is_down_is_a_503() -> None:
    import urllib.error

    import redis

    from runq.worker.launcher import free_port

    down = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    server = MetricsServer(down, "127.0.0.1", 0).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(server.url, timeout=5)
    finally:
        server.stop()
    assert failed.value.code == 503
    assert failed.value.headers["Retry-After"] == "5"
    assert b"Redis cannot be reached" in failed.value.read()


def test_build_registry_without_queues(r: fakeredis.FakeRedis) -> None:
    text = generate_latest(build_registry(r, queues=())).decode()
    assert "runq_jobs_total" in text and "runq_queue_length" not in text


def test_asgi_app_serves_metrics(r: fakeredis.FakeRedis) -> None:
    import asyncio

    from runq.producers.ops.metrics_server import metrics_asgi_app

    Metrics(r, prices=PRICES).retry(link="l", code="c")
    app = metrics_asgi_app(r)
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": []}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 200
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert b'runq_retries_total{code="c",link="l"} 1.0' in body


def test_a_model_named_by_a_job_but_unknown_to_configuration_counts_as_other() -> None:
    """A tenant picks its job's model: unknown names must not mint a series each."""
    r = fakeredis.FakeRedis()
    m = Metrics(r, prices=PRICES, known_models={"configured-model"})
    for i in range(50):
        m.job_finished(status="succeeded", source="s", model=f"made-up-{i}",
                       latency_s=1, input_tokens=1, output_tokens=1)  # fmt: skip
    m.job_finished(status="succeeded", source="s", model="configured-model",
                   latency_s=1, input_tokens=2, output_tokens=0)  # fmt: skip
    m.job_finished(status="succeeded", source="s", model="m-cheap-2025-08-07",
                   latency_s=1, input_tokens=3, output_tokens=0)  # fmt: skip
    s = scrape(m)
    models = {dict(labels)["model"] for (name, labels) in s if name == "runq_tokens_total"}
    assert models == {"other", "configured-model", "m-cheap-2025-08-07"}
    assert s[("runq_tokens_total", (("direction", "input"), ("model", "other")))] == 50


def test_standalone_server_with_a_token_refuses_scrapes_without_it(r: fakeredis.FakeRedis) -> None:
    import urllib.error

    server = MetricsServer(r, "127.0.0.1", 0, token="scrape-me").start()
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-me"}):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(
                    urllib.request.Request(server.url, headers=headers), timeout=5
                )
            assert refused.value.code == 401
        ok = urllib.request.Request(server.url, headers={"Authorization": "Bearer scrape-me"})
        with urllib.request.urlopen(ok, timeout=5) as resp:
            assert b"runq_queue_length" in resp.read()
    finally:
        server.stop()


def test_runq_metrics_will_not_listen_beyond_loopback_without_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from runq.producers.ops.metrics_server import TOKEN_VAR, run_metrics

    monkeypatch.delenv(TOKEN_VAR, raising=False)
    assert run_metrics("0.0.0.0", 0, redis_url="redis://127.0.0.1:1/0") == 2
    assert TOKEN_VAR in capsys.readouterr().err
