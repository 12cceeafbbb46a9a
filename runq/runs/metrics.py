"""Job, tool, retry, token and cost metrics, kept in Redis so every worker process adds up.

Workers are separate processes (and run on several machines): a Prometheus registry per
process would count a fraction of the work each and lose it when the process is
recycled. So the figures are `HINCRBY` / `HINCRBYFLOAT` increments of a single hash
(`keys.metrics()`), and a `prometheus_client` custom collector renders that hash at
scrape time (`runq metrics`, or the gateway's `/metrics`).

How increments reach the hash depends on `flush_interval` (`RUNQ_METRICS_FLUSH_INTERVAL`,
1 second in a worker). Above 0, a record call only adds to in-process sums
(`runs.metrics_buffer`), and a daemon thread sends them in one pipeline per interval:
one command per field touched in the interval instead of a dozen per finished job, so
the hash's hot key takes a few commands per process per second at any job rate. The
price: readers see figures up to one interval late, and a process killed without a
chance to run Python (SIGKILL, OOM) loses at most its last interval's increments (a
clean exit and a worker's shutdown flush). At 0 (the default of a bare `Metrics`, as
the readers build it) every record call is one round trip, as before: a finished job's
figures in one pipeline, a tool call's riding in the transaction that appends its
`tool.output` event (`pipe=`). Either way the pipeline is not a transaction: increments
commute and nothing reads between them, so `MULTI`/`EXEC` would only add two commands.

Hash fields are the series name followed by its labels as sorted JSON, e.g.
``jobs_total{"source":"responses:gpt-5-mini","status":"succeeded"}``. A histogram keeps
one field per bucket, counting the observations that fell *into* that bucket (not the
cumulative count), so an observation is a single increment; the collector sums them
into Prometheus' cumulative ``le`` buckets. Counters never reset (Redis persists them).

Recording never breaks a job: a Redis error while recording is logged and dropped
(buffered sums are kept for the next flush instead, up to a bound).

Cost is computed when a job finishes, from a price table (USD per 1M tokens, input and
output): `DEFAULT_PRICES` overridden by `RUNQ_PRICES` (JSON ``{"model": [in, out]}``).
A model missing from the table counts tokens but no cost.

Label values are bounded: a job names its own model, so a tenant could otherwise mint a
new Prometheus series per request. The `model` label is the model's name only when the
price table or a configured chain link knows it, else ``other``; every other label comes
from configuration (link names, registered tools, runq's own codes).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence

import redis
import structlog
from prometheus_client.core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from runq.errors import ConfigurationError
from runq.runs import keys
from runq.runs.metrics_buffer import MetricsBuffer

log = structlog.get_logger("runq.metrics")

PRICES_ENV = "RUNQ_PRICES"

# USD per 1M tokens (input, output): list prices of the models runq is usually pointed at.
# Prices change; deployments override them with RUNQ_PRICES.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-5": (1.25, 10.0),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.0),
    "gpt-4o-mini": (0.15, 0.60),
}

# Bucket upper bounds, seconds. A job waits on a model for seconds to minutes; a tool
# call takes milliseconds to seconds.
JOB_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, math.inf)
TOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, math.inf)

# series -> (help, label names)
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "jobs": ("Jobs that reached a terminal status.", ("status", "source")),
    "tool_errors": ("Tool calls that ended in an error.", ("tool", "error")),
    "retries": ("Retries scheduled, by backend link and error code.", ("link", "code")),
    "ratelimit_wait_seconds": (
        "Seconds steps were deferred waiting for a rate-limit token.",
        ("link",),
    ),
    "tokens": ("Tokens used by finished jobs.", ("model", "direction")),
    "cost_usd": ("Estimated cost of finished jobs in USD (price table).", ("model",)),
    "tier_cost_usd": (
        "Estimated cost of finished jobs in USD by cost tier (runs.tiers prices).",
        ("tier", "model"),
    ),
}
HISTOGRAMS: dict[str, tuple[str, tuple[str, ...], tuple[float, ...]]] = {
    "job_latency_seconds": ("Seconds from submit to the end of a job.", (), JOB_BUCKETS),
    "run_wait_seconds": (
        "Seconds from run created to run completed at the backend.",
        (),
        JOB_BUCKETS,
    ),
    "tool_latency_seconds": ("Seconds one tool call took.", ("tool",), TOOL_BUCKETS),
}
NAMESPACE = "runq"
MAX_LABEL = 120
OTHER_MODEL = "other"
_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def _label(value: str | None) -> str:
    return "none" if value is None or value == "" else str(value)[:MAX_LABEL]


def _field(series: str, labels: Mapping[str, str]) -> str:
    return series + json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))


def _parse_field(field: str) -> tuple[str, dict[str, str]] | None:
    cut = field.find("{")
    if cut <= 0:
        return None
    try:
        labels = json.loads(field[cut:])
    except ValueError:
        return None
    if not isinstance(labels, dict):
        return None
    return field[:cut], {str(k): str(v) for k, v in labels.items()}


def _bucket_for(value: float, bounds: Sequence[float]) -> str:
    for bound in bounds:
        if value <= bound:
            return floatToGoString(bound)
    return "+Inf"


def load_prices(
    raw: str | None = None, *, environ: Mapping[str, str] | None = None
) -> dict[str, tuple[float, float]]:
    """`DEFAULT_PRICES` updated from `raw` or the `RUNQ_PRICES` environment variable.

    The override is JSON: ``{"model": [usd_per_1m_input, usd_per_1m_output], ...}``.
    Raises `ConfigurationError` naming `RUNQ_PRICES` when it is not that shape.
    """
    if raw is None:
        raw = (os.environ if environ is None else environ).get(PRICES_ENV)
    prices = dict(DEFAULT_PRICES)
    if not raw or not raw.strip():
        return prices
    hint = f'{PRICES_ENV} must be a JSON object {{"model": [usd_per_1m_in, usd_per_1m_out]}}'
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{hint}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{hint} (got {type(data).__name__})")
    for model, pair in data.items():
        ok = (
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and all(isinstance(p, int | float) and not isinstance(p, bool) and p >= 0 for p in pair)
        )
        if not ok:
            raise ConfigurationError(f"{hint}; bad entry for {model!r}: {pair!r}")
        prices[str(model)] = (float(pair[0]), float(pair[1]))
    return prices


def price_for(model: str, prices: Mapping[str, tuple[float, float]]) -> tuple[float, float] | None:
    """The price of `model`, or of its undated name (``gpt-5-mini-2025-08-07``)."""
    if model in prices:
        return prices[model]
    return prices.get(_DATED.sub("", model))


class Metrics:
    """Records runq's metrics in Redis and renders them for Prometheus."""

    def __init__(
        self,
        redis_client: redis.Redis,
        prices: dict[str, tuple[float, float]] | None = None,
        *,
        known_models: Iterable[str] = (),
        flush_interval: float = 0.0,
    ) -> None:
        """`flush_interval` > 0: increments are summed in-process and sent at most every
        that many seconds (a worker's runtime passes `RUNQ_METRICS_FLUSH_INTERVAL`); 0:
        each record call sends its own pipeline (readers, tests)."""
        if not flush_interval >= 0:
            raise ConfigurationError(
                f"RUNQ_METRICS_FLUSH_INTERVAL must be at least 0 (got {flush_interval!r})"
            )
        self.redis = redis_client
        self.prices = load_prices() if prices is None else dict(prices)
        self.known_models = frozenset(known_models)
        self.key = keys.metrics()
        self.buffer = (
            MetricsBuffer(redis_client, self.key, flush_interval) if flush_interval > 0 else None
        )

    def model_label(self, model: str | None) -> str:
        """`model` when configuration knows it (price table, chain links), else ``other``:
        a label value a job chooses must not grow the series without bound."""
        if not model:
            return _label(model)
        if model in self.known_models or price_for(model, self.prices) is not None:
            return _label(model)
        return OTHER_MODEL

    # -- recording ---------------------------------------------------------------------
    def job_finished(
        self,
        *,
        status: str,
        source: str | None,
        model: str,
        latency_s: float,
        input_tokens: int,
        output_tokens: int,
        run_wait_s: float | None = None,
        tier_costs: Mapping[str, float] | None = None,
    ) -> None:
        """A job reached a terminal status: count it, its latency, tokens and cost.

        `tier_costs` is the job's cost in USD by tier (`Job.cost`), priced by the tier's
        factor; `cost_usd` stays the standard-price estimate it always was.

        `run_wait_s` (creation to completion of its last run at the backend) goes with
        the rest: one pipeline per finished job, or the buffer's sums.
        """
        model_l = self.model_label(model)
        ints: list[tuple[str, int]] = [
            (_field("jobs", {"status": _label(status), "source": _label(source)}), 1),
            (_field("tokens", {"model": model_l, "direction": "input"}), int(input_tokens)),
            (_field("tokens", {"model": model_l, "direction": "output"}), int(output_tokens)),
        ]
        floats: list[tuple[str, float]] = []
        price = price_for(model, self.prices)
        if price is not None:
            cost = (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000
            floats.append((_field("cost_usd", {"model": model_l}), cost))
        for tier, usd in (tier_costs or {}).items():
            labels = {"tier": _label(tier), "model": model_l}
            floats.append((_field("tier_cost_usd", labels), float(usd)))
        observations: list[tuple[str, dict[str, str], float]] = [
            ("job_latency_seconds", {}, latency_s)
        ]
        if run_wait_s is not None:
            observations.append(("run_wait_seconds", {}, run_wait_s))
        self._record(ints, floats, observations)

    def tool_call(
        self,
        *,
        name: str,
        seconds: float,
        error: str | None,
        pipe: redis.client.Pipeline | None = None,
    ) -> None:
        """One tool call ran; `error` is a short error code (or None when it succeeded).

        With `pipe` and no buffer, the increments are only queued on it: the caller
        executes it. With a buffer they go to the buffer, and `pipe` is left alone."""
        tool = _label(name)
        ints = (
            []
            if error is None
            else [(_field("tool_errors", {"tool": tool, "error": _label(error)}), 1)]
        )
        self._record(ints, [], [("tool_latency_seconds", {"tool": tool}, seconds)], pipe=pipe)

    def retry(self, *, link: str, code: str) -> None:
        """A retry was scheduled on backend link `link` after error class `code`."""
        self._record([(_field("retries", {"link": _label(link), "code": _label(code)}), 1)], [], [])

    def ratelimit_wait(self, *, link: str, seconds: float) -> None:
        """A step was deferred `seconds` to wait for a rate-limit token of `link`."""
        self._record([], [(_field("ratelimit_wait_seconds", {"link": _label(link)}), seconds)], [])

    def _record(
        self,
        ints: Iterable[tuple[str, int]],
        floats: Iterable[tuple[str, float]],
        observations: Iterable[tuple[str, dict[str, str], float]],
        pipe: redis.client.Pipeline | None = None,
    ) -> None:
        counts, amounts = list(ints), list(floats)
        for series, labels, value in observations:  # one bucket and the sum (module doc)
            value = max(0.0, float(value))
            bucket = _bucket_for(value, HISTOGRAMS[series][2])
            counts.append((_field(series + "_bucket", {**labels, "le": bucket}), 1))
            amounts.append((_field(series + "_sum", labels), value))
        if self.buffer is not None:
            self.buffer.add(counts, amounts)
            return
        if pipe is not None:
            self._queue(pipe, counts, amounts)
            return
        own = self.redis.pipeline(transaction=False)
        self._queue(own, counts, amounts)
        try:
            own.execute()
        except redis.RedisError as exc:
            log.warning("metrics.record_failed", error=str(exc))

    def _queue(
        self,
        pipe: redis.client.Pipeline,
        ints: Iterable[tuple[str, int]],
        floats: Iterable[tuple[str, float]],
    ) -> None:
        for field, count in ints:
            pipe.hincrby(self.key, field, count)
        for field, amount in floats:
            pipe.hincrbyfloat(self.key, field, amount)

    def flush(self) -> bool:
        """Send the buffered sums now; False when Redis refused them (they are kept)."""
        return True if self.buffer is None else self.buffer.flush()

    def close(self) -> bool:
        """Stop the flush thread and send what is left (a process that stops recording)."""
        return True if self.buffer is None else self.buffer.close()

    # -- reading -----------------------------------------------------------------------
    def snapshot(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every stored series: (name, sorted labels) -> value (histograms per bucket).

        This process's buffered sums are flushed first, so it reads its own figures."""
        self.flush()
        raw = self.redis.hgetall(self.key)
        out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for field, value in raw.items():
            name = field.decode() if isinstance(field, bytes) else str(field)
            parsed = _parse_field(name)
            if parsed is None:
                continue
            series, labels = parsed
            out[(series, tuple(sorted(labels.items())))] = float(value)
        return out

    def collector(self) -> Collector:
        """A `prometheus_client` collector that reads the hash at every scrape."""
        return RedisCollector(self)

    def reset(self) -> None:
        """Forget every recorded value (tests, or a deliberate reset by an operator).

        Other processes' buffered sums still arrive at their next flush."""
        if self.buffer is not None:
            self.buffer.discard()
        self.redis.delete(self.key)


class RedisCollector:
    """Renders the Redis hash of a `Metrics` as Prometheus families."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterator[Metric]:
        """The families without samples: registering a collector does not touch Redis."""
        yield from self._families({})

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self.metrics.snapshot())

    def _families(
        self, data: Mapping[tuple[str, tuple[tuple[str, str], ...]], float]
    ) -> Iterator[Metric]:
        for series, (doc, names) in COUNTERS.items():
            family = CounterMetricFamily(f"{NAMESPACE}_{series}", doc, labels=names)
            for (stored, labels), value in sorted(data.items()):
                if stored == series:
                    found = dict(labels)
                    family.add_metric([found.get(n, "") for n in names], value)
            yield family
        for series, (doc, names, bounds) in HISTOGRAMS.items():
            yield _histogram(series, doc, names, bounds, data)


def _histogram(
    series: str,
    doc: str,
    names: tuple[str, ...],
    bounds: tuple[float, ...],
    data: Mapping[tuple[str, tuple[tuple[str, str], ...]], float],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(f"{NAMESPACE}_{series}", doc, labels=names)
    per_bucket: dict[tuple[str, ...], dict[float, float]] = defaultdict(dict)
    sums: dict[tuple[str, ...], float] = {}
    for (stored, labels), value in data.items():
        found = dict(labels)
        key = tuple(found.get(n, "") for n in names)
        if stored == series + "_bucket":
            le = float(found.get("le", "+Inf"))
            per_bucket[key][le] = per_bucket[key].get(le, 0.0) + value
        elif stored == series + "_sum":
            sums[key] = value
    series_keys = sorted(set(per_bucket) | set(sums))
    if not series_keys and not names:  # an unlabelled histogram starts at zero, not absent
        series_keys = [()]
    for key in series_keys:
        counts = per_bucket.get(key, {})
        running = 0.0
        buckets = []
        for bound in sorted(set(bounds) | set(counts) | {math.inf}):
            running += counts.get(bound, 0.0)
            buckets.append((floatToGoString(bound), running))
        family.add_metric(list(key), buckets, sum_value=sums.get(key, 0.0))
    return family
