"""`python -m bench.run`: runq (poll and stream) against the naive pattern and the no-queue bound.

Every contender gets a fresh Redis and a fresh sandbox with the same settings, one after
another, and runs the same jobs (a prompt, optionally one scripted `calculator` round):

- `runq_poll`: runq, poll mode, one `celery -A worker worker` with `--concurrency 2`
  (prefork: two pool processes) on queues `runs,tools`;
- `runq_stream`: the same with `mode="stream"`;
- `runq_webhook`: the same with `mode="webhook"`: the sandbox signs and sends a webhook
  when each background response ends, `runq webhooks` receives it and wakes the job,
  and only a safety poll (60 s) stays scheduled; the receiver's CPU counts as worker CPU;
- `naive`: `bench.naive`, one blocking Celery task per job (`retrieve` + `sleep(1)`), the
  same worker shape, on `min(N, naive cap)` jobs;
- `no_queue`: `bench.no_queue`, asyncio + `AsyncOpenAI`, all jobs at once, no Redis.

Completion-to-result latency is measured from the backend finishing the job's last
response (the sandbox's planned `done_at`, read from `bench.sandbox_probe`) to the
producer seeing the result (a watcher blocked on the job's event stream for runq, on
Celery's result channel for naive, the coroutine itself for no-queue).

    python -m bench.run                # N=1000, L=500 ms -> docs/benchmarks.md, latest.json
    python -m bench.run --full         # N=5000
    python -m bench.run --quick        # CI smoke: N=30, L=200 ms -> bench/results/quick.json
    python -m bench.run --network-only # only the scenario below

The `fairness` scenario (`bench.fairness`): tenant A submits N jobs, then tenant B 20;
B's submit-to-start p95 against B alone (`--no-fairness` skips it).

The full run ends with a third scenario, `network_100ms`: the sandbox holds every API
request for 100 ms (a network and an API front end between workers and backend), and
runq runs as a newcomer starts it: two `runq worker` processes with no flags at all,
so whatever pool and concurrency `runq worker` defaults to is what is measured.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import pstats
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

from bench.common import (
    ProbeSandbox,
    ProcWatch,
    machine_info,
    percentile,
    redis_counters,
    redis_delta,
)
from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.producers.webhooks import PATH as WEBHOOK_PATH
from runq.producers.webhooks.process import WebhookServerProcess
from runq.runs import keys
from runq.worker.launcher import EmbeddedRedis, WorkerProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CONTENDERS = ("runq_poll", "runq_stream", "runq_webhook", "naive", "no_queue")
SAFETY_POLL_S = 60  # runq_webhook: the poll that covers a lost webhook (none is lost here)
FIELDS = (
    "jobs", "makespan_s", "jobs_per_s", "result_latency_p50_ms", "result_latency_p99_ms",
    "worker_cpu_ms_per_job", "redis_cmds_per_job", "peak_rss_mb", "max_in_flight",
)  # fmt: skip
PROMPT = "What is 2+2?"


def script_for(rounds: int) -> str | None:
    if not rounds:
        return None
    return json.dumps([[{"name": "calculator", "arguments": {"expression": "2+2"}}]] * rounds)


@dataclass
class Config:
    jobs: int
    latency_ms: int
    tool_rounds: int
    naive_jobs: int
    concurrency: int = 2
    runq_pool: str = "prefork"  # "threads": one runq worker process with `threads` slots
    threads: int = 32
    poll_interval_max: float | None = None  # RUNQ_POLL_INTERVAL_MAX for runq workers
    request_latency_ms: int = 0  # the sandbox's per-request delay (a network to the backend)
    newcomer_workers: int = 0  # >0: that many `runq worker` processes with no flags instead
    timeout: float = 900.0
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="runq-bench-")))


def sandbox_for(cfg: Config, hooks: BenchWebhooks | None = None) -> ProbeSandbox:
    """The sandbox every contender of a scenario talks to, shaped by the same settings;
    with `hooks` it also sends its webhooks there."""
    env = {"RUNQ_SANDBOX_REQUEST_LATENCY_MS": str(cfg.request_latency_ms)}
    if hooks is None:
        return ProbeSandbox(latency_ms=cfg.latency_ms, env=env)
    env["RUNQ_SANDBOX_WEBHOOK_SECRET"] = hooks.secret
    return ProbeSandbox(latency_ms=cfg.latency_ms, env=env, extra_args=["--webhook-url", hooks.url])


@dataclass
class BenchWebhooks:
    """runq_webhook's receiver: its port (known before the sandbox starts) and secret."""

    port: int = field(default_factory=lambda: free_port())
    secret: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    )
    proc: WebhookServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    def start(self, redis_url: str, home: Path) -> WebhookServerProcess:
        self.proc = WebhookServerProcess(
            redis_url, self.secret, port=self.port, log_path=home / "webhooks.log",
            # INFO: `webhook.job_woken` lines time each wake (latency after the delivery).
            env={"RUNQ_LOG_FORMAT": "json", "RUNQ_LOG_LEVEL": "INFO"},
        ).start()  # fmt: skip
        return self.proc

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


# -- watchers -------------------------------------------------------------------------------
class RunqWatcher(threading.Thread):
    """Blocks on every unfinished job's event stream (one XREAD for all); notes the final."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.redis = redis.Redis.from_url(url)
        self.pending: dict[str, str] = {}
        self.seen: dict[str, float] = {}
        self.status: dict[str, str] = {}
        self.commands = 0
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def add(self, job_id: str) -> None:
        with self.lock:
            self.pending[keys.events(job_id)] = "0-0"

    def run(self) -> None:
        while not self.halt.is_set():
            with self.lock:
                streams = dict(self.pending)
            if not streams:
                time.sleep(0.01)
                continue
            self.commands += 1
            reply = self.redis.xread(streams, block=200, count=100)
            now = time.time()
            for key, entries in reply or []:
                name = key.decode()
                for entry_id, fields in entries:
                    data = json.loads(fields[b"data"])
                    with self.lock:
                        self.pending[name] = entry_id.decode()
                        if data.get("type") == "job.final":
                            job_id = name.rsplit(":", 1)[-1]
                            self.seen[job_id] = now
                            self.status[job_id] = str(data.get("status"))
                            self.pending.pop(name, None)


class NaiveWatcher(threading.Thread):
    """Subscribes to Celery's result channels (the Redis backend publishes each result)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.redis = redis.Redis.from_url(url)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe("celery-task-meta-*")
        self.seen: dict[str, float] = {}
        self.status: dict[str, str] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            msg = self.pubsub.get_message(timeout=0.2)
            if not msg:
                continue
            now = time.time()
            data = json.loads(msg["data"])
            if data.get("status") not in ("SUCCESS", "FAILURE"):
                continue
            result = data.get("result") or {}
            job_id = result.get("job_id") if isinstance(result, dict) else None
            if job_id:
                self.seen[job_id] = now
                self.status[job_id] = str(result.get("status"))


def wait_for(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.05)
    return done()


# -- contenders -----------------------------------------------------------------------------
def start_naive_worker(url: str, base_url: str, cfg: Config, home: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "celery", "-A", "bench.naive", "worker", "-Q", "naive",
            "--concurrency", str(cfg.concurrency), "--pool", "prefork", "--loglevel", "WARNING",
            "--without-mingle", "--without-gossip", "-n", f"naive-{os.getpid()}@%h"]  # fmt: skip
    env = {**os.environ, "REDIS_URL": url, "OPENAI_BASE_URL": base_url, "RUNQ_HOME": str(home)}
    log = (home / "worker.log").open("ab")
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True, cwd=ROOT)  # fmt: skip


def summarize(
    name: str, jobs: int, makespan: float, latencies: list[float], succeeded: int,
    cpu_s: float, cmds: float, rss: float, in_flight: int, **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    return {
        "jobs": jobs,
        "succeeded": succeeded,
        "makespan_s": round(makespan, 3),
        "jobs_per_s": round(jobs / makespan, 3) if makespan > 0 else 0.0,
        "result_latency_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "result_latency_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "worker_cpu_ms_per_job": round(cpu_s * 1000 / max(jobs, 1), 2),
        "redis_cmds_per_job": round(cmds / max(jobs, 1), 2),
        "peak_rss_mb": round(rss, 1),
        "max_in_flight": in_flight,
        **extra,
    }


def wakes_from(log_path: Path) -> dict[str, float]:
    """When the receiver woke the job of each response (its `webhook.job_woken` lines):
    the delivery is in, the job's step is sent; what follows is the workers' part."""
    woken: dict[str, float] = {}
    with contextlib.suppress(OSError), log_path.open(errors="replace") as lines:
        for line in lines:
            if '"webhook.job_woken"' not in line:
                continue
            with contextlib.suppress(ValueError, KeyError):
                entry = json.loads(line)
                at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
                woken.setdefault(entry["response_id"], at.timestamp())
    return woken


def latencies_from(seen: dict[str, float], timelines: dict[str, dict[str, Any]]) -> list[float]:
    return [at - timelines[j]["done_at"] for j, at in seen.items() if j in timelines]


def parse_contender(spec: str) -> tuple[str, dict[str, str]]:
    """`runq_webhook` or a variant of it, `runq_webhook[RUNQ_X=1;RUNQ_Y=2]`: the contender
    and the environment its workers get on top, so two settings of one contender are
    measured side by side in one run (the machine's noise cancels out of the comparison)."""
    base, _, rest = spec.partition("[")
    env: dict[str, str] = {}
    for pair in rest.rstrip("]").split(";") if rest else []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"contender {spec!r}: {pair!r} is not NAME=VALUE")
        env[key.strip()] = value.strip()
    if base not in CONTENDERS:
        raise SystemExit(f"unknown contender {base!r} (known: {', '.join(CONTENDERS)})")
    return base, env


def slug(spec: str) -> str:
    """A contender's name fit for a directory, a worker name and job ids."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in spec).strip("-")


def runq_worker_env(cfg: Config, home: Path, name: str = "") -> dict[str, str]:
    base, extra = parse_contender(name) if name else ("", {})
    env = {"RUNQ_HOME": str(home), "RUNQ_LOG_FORMAT": "json", "RUNQ_TOOL_MODULES": "examples.tools"}
    if cfg.poll_interval_max:
        env["RUNQ_POLL_INTERVAL_MAX"] = str(cfg.poll_interval_max)
    if base == "runq_webhook":
        env.update(RUNQ_MODE="webhook", RUNQ_SAFETY_POLL_INTERVAL=str(SAFETY_POLL_S))
    return {**env, **extra}


def start_newcomer_workers(
    cfg: Config, redis_url: str, base_url: str, home: Path, env: dict[str, str]
) -> list[subprocess.Popen[bytes]]:
    """`runq worker` with no flags, `cfg.newcomer_workers` times: the shape a newcomer gets.

    Only the environment says where Redis, the backend and the tools are."""
    runq = str(Path(sys.executable).parent / "runq")
    full_env = {**os.environ, **env, "REDIS_URL": redis_url, "OPENAI_BASE_URL": base_url}
    log_file = (home / "worker.log").open("ab")
    options: dict[str, Any] = {
        "stdin": subprocess.DEVNULL, "stdout": log_file, "stderr": subprocess.STDOUT,
        "env": full_env, "cwd": ROOT, "start_new_session": True,
    }  # fmt: skip
    return [subprocess.Popen([runq, "worker"], **options) for _ in range(cfg.newcomer_workers)]


@dataclass
class Workers:
    """The processes of one contender's workers; `roots` are the trees measured."""

    runq: WorkerProcess | None = None
    others: list[subprocess.Popen[bytes]] = field(default_factory=list)
    roots: list[int] = field(default_factory=list)

    def stop(self) -> None:
        from runq.worker.launcher import stop_process

        if self.runq is not None:
            self.runq.stop()
        for proc in self.others:
            stop_process(proc)


def stop_stack(
    workers: Workers, hooks: BenchWebhooks | None, sandbox: ProbeSandbox, server: EmbeddedRedis
) -> None:
    """Stop a contender's processes: its workers first (they talk to the rest), then the
    webhook receiver, the sandbox and Redis."""
    workers.stop()
    if hooks is not None:
        hooks.stop()
    sandbox.stop()
    server.stop()


def start_workers(name: str, cfg: Config, url: str, base_url: str, home: Path) -> Workers:
    """naive's Celery worker, newcomer `runq worker`s, or one runq worker of a set shape."""
    env = runq_worker_env(cfg, home, name)
    if parse_contender(name)[0] == "naive":
        proc = start_naive_worker(url, base_url, cfg, home)
        return Workers(others=[proc], roots=[proc.pid])
    if cfg.newcomer_workers:
        procs = start_newcomer_workers(cfg, url, base_url, home, env)
        return Workers(others=procs, roots=[p.pid for p in procs])
    # A variant may set the worker's shape too: `runq_webhook[pool=threads;concurrency=16]`.
    pool = env.pop("pool", cfg.runq_pool)
    threads = pool == "threads"
    concurrency = int(env.pop("concurrency", cfg.threads if threads else cfg.concurrency))
    worker = WorkerProcess(
        url, base_url, queues="runs,tools", concurrency=concurrency,
        pool=pool, name=f"{slug(name)}-{os.getpid()}@%h", env=env,
        log_path=home / "worker.log",
    ).start()  # fmt: skip
    assert worker.proc is not None
    return Workers(runq=worker, roots=[worker.proc.pid])


def run_celery(name: str, cfg: Config, log: Callable[[str], None]) -> dict[str, Any]:
    """runq_poll, runq_stream or naive: fresh Redis, fresh sandbox, one 2-process worker."""
    base, _ = parse_contender(name)
    home = cfg.workdir / slug(name)
    home.mkdir(parents=True, exist_ok=True)
    naive = base == "naive"
    n = cfg.naive_jobs if naive else cfg.jobs
    server = EmbeddedRedis(home).start()
    hooks = BenchWebhooks() if base == "runq_webhook" else None
    sandbox = sandbox_for(cfg, hooks).start()
    workers = Workers()
    try:
        workers = start_workers(name, cfg, server.url, sandbox.base_url, home)
        roots = list(workers.roots)
        root_pid = roots[0]
        receiver_pid = None
        if hooks is not None:
            receiver = hooks.start(server.url, home)
            assert receiver.proc is not None
            receiver_pid = receiver.proc.pid
            roots.append(receiver_pid)  # its CPU is the worker side's too
        mode = {"runq_stream": "stream", "runq_webhook": "webhook"}.get(base, "poll")
        script = script_for(cfg.tool_rounds)
        tools = ["calculator"] if cfg.tool_rounds else []
        metadata = {"sandbox_script": script} if script else {}
        client = Client(server.url, load_settings(redis_url=server.url, home=home))
        if naive:
            from celery import Celery

            producer = Celery("naive-producer", broker=server.url, backend=server.url,
                              set_as_current=False)  # fmt: skip
            producer.conf.update(task_serializer="json", accept_content=["json"])

            def submit(job_id: str) -> None:
                producer.send_task("naive.run_job", args=[job_id, PROMPT, tools, script],
                                   task_id=job_id, queue="naive")  # fmt: skip

            watcher: RunqWatcher | NaiveWatcher = NaiveWatcher(server.url)
        else:

            def submit(job_id: str) -> None:
                client.submit(PROMPT, job_id=job_id, mode=mode, tools=tools or None,
                              metadata=metadata or None)  # fmt: skip
                assert isinstance(watcher, RunqWatcher)
                watcher.add(job_id)

            watcher = RunqWatcher(server.url)
        watcher.start()
        # Warm-up: both pool processes import everything and connect before the clock runs.
        warm = [f"warm-{slug(name)}-{i}" for i in range(cfg.concurrency * 2 * max(1, len(roots)))]
        for job_id in warm:
            submit(job_id)
        if not wait_for(
            lambda: all(j in watcher.seen for j in warm), max(120, cfg.latency_ms / 250)
        ):
            raise RuntimeError(f"{name}: the worker did not finish its warm-up jobs")
        sandbox.reset()
        watch = ProcWatch(roots).start()
        rconn = redis.Redis.from_url(server.url)
        before = redis_counters(rconn)
        xread_before = getattr(watcher, "commands", 0)
        ids = [f"{slug(name)}-{i:06d}" for i in range(n)]
        log(f"{name}: submitting {n} jobs")
        started = time.time()
        for job_id in ids:
            submit(job_id)
        submitted = time.time()
        finished = wait_for(lambda: all(j in watcher.seen for j in ids), cfg.timeout)
        ended = max((watcher.seen.get(j, 0.0) for j in ids), default=time.time())
        after = redis_counters(rconn)
        watch.stop()
        watcher.halt.set()
        stats = sandbox.stats()
        timelines = sandbox.timelines()
        delta = redis_delta(before, after)
        own = getattr(watcher, "commands", 0) - xread_before
        redis_cpu = delta.pop("__cpu_s", 0.0)
        delta.pop("info", None)
        if own:
            delta["xread"] = delta.get("xread", 0.0) - own
        cmds = sum(delta.values())
        seen = {j: watcher.seen[j] for j in ids if j in watcher.seen}
        succeeded = sum(1 for j in ids if watcher.status.get(j) == "succeeded")
        pool_pids = [p for p in watch.peak_rss if p not in roots] or roots
        extra: dict[str, Any] = {
            "accounted": len(seen),
            "all_finished": finished,
            "submit_s": round(submitted - started, 3),
            "redis_cpu_s": round(redis_cpu, 3),
            "redis_cmds_by_name_per_job": {k: round(v / n, 2) for k, v in
                                           sorted(delta.items(), key=lambda kv: -kv[1]) if v},
            "worker_main_rss_mb": round(watch.peak_rss.get(root_pid, 0.0), 1),
            # Where the worker CPU went: each worker's main process (Celery's consumer,
            # the wake runner, the pumps), each pool process, in webhook mode the receiver.
            "worker_cpu_ms_per_job_by_process": {
                "main": [round(watch.cpu_of(p) * 1000 / max(n, 1), 2) for p in workers.roots],
                "pool": [round(watch.cpu_of(p) * 1000 / max(n, 1), 2)
                         for p in sorted(watch.cpu_last) if p not in roots],
            },
            "worker_pool_rss_mb": [round(watch.peak_rss[p], 1) for p in pool_pids],
            "backend_requests": sum(stats.get("requests", {}).values()),
            "responses_created": stats.get("responses_created"),
        }  # fmt: skip
        if not naive:
            polls = [client.store.get(j).polls for j in ids[: min(n, 500)]]
            extra["polls_per_job"] = round(sum(polls) / max(len(polls), 1), 2)
            extra["mode_seen"] = sorted({client.store.get(j).spec.mode for j in ids[:20]})
        if receiver_pid is not None:
            used = watch.cpu_last.get(receiver_pid, 0.0) - watch.cpu_base.get(receiver_pid, 0.0)
            extra["receiver_cpu_ms_per_job"] = round(used * 1000 / max(n, 1), 2)
            extra["worker_cpu_ms_per_job_by_process"]["receiver"] = extra["receiver_cpu_ms_per_job"]
            woken = wakes_from(home / "webhooks.log")
            after = [at - woken[timelines[j]["response_id"]] for j, at in seen.items()
                     if j in timelines and timelines[j]["response_id"] in woken]  # fmt: skip
            extra["woken_jobs"] = len(after)
            extra["result_after_delivery_p50_ms"] = round(percentile(after, 50) * 1000, 1)
            extra["result_after_delivery_p99_ms"] = round(percentile(after, 99) * 1000, 1)
            extra["webhooks"] = stats.get("webhooks")
        return summarize(
            name, n, ended - started, latencies_from(seen, timelines), succeeded,
            watch.cpu_used(), cmds, watch.max_rss(pool_pids or None),
            int(stats.get("peak_in_flight_responses", 0)), **extra,
        )  # fmt: skip
    finally:
        stop_stack(workers, hooks, sandbox, server)


def run_no_queue(cfg: Config, log: Callable[[str], None]) -> dict[str, Any]:
    home = cfg.workdir / "no_queue"
    home.mkdir(parents=True, exist_ok=True)
    sandbox = sandbox_for(cfg).start()
    out = home / "no_queue.json"
    try:
        log(f"no_queue: {cfg.jobs} jobs")
        subprocess.run(
            [sys.executable, "-m", "bench.no_queue", "--base-url", sandbox.base_url,
             "--jobs", str(cfg.jobs), "--tool-rounds", str(cfg.tool_rounds), "--out", str(out)],
            check=True, cwd=ROOT, timeout=cfg.timeout,
        )  # fmt: skip
        data = json.loads(out.read_text())
        stats = sandbox.stats()
        timelines = sandbox.timelines()
    finally:
        sandbox.stop()
    seen = {j["job_id"]: j["seen_at"] for j in data["jobs"]}
    succeeded = sum(1 for j in data["jobs"] if j["status"] == "succeeded")
    ended = max(seen.values(), default=data["finished"])
    return summarize(
        "no_queue", cfg.jobs, ended - data["started"], latencies_from(seen, timelines), succeeded,
        data["cpu_s"], 0.0, data["peak_rss_mb"], int(stats.get("peak_in_flight_responses", 0)),
        accounted=len(seen), errors=data["errors"], redis_cpu_s=0.0,
        backend_requests=sum(stats.get("requests", {}).values()),
        responses_created=stats.get("responses_created"),
    )  # fmt: skip


def profile_runq_poll(cfg: Config, jobs: int, log: Callable[[str], None]) -> str:
    """runq poll mode with one solo-pool worker under cProfile: where a worker's time goes."""
    home = cfg.workdir / "profile"
    home.mkdir(parents=True, exist_ok=True)
    server = EmbeddedRedis(home).start()
    sandbox = sandbox_for(cfg).start()
    prof = home / "worker.prof"
    args = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "celery", "-A", "runq.worker",
            "worker", "-Q", "runs,tools", "--pool", "solo", "--loglevel", "INFO",
            "--without-mingle", "--without-gossip", "-n", f"prof-{os.getpid()}@%h"]  # fmt: skip
    env = {**os.environ, "REDIS_URL": server.url, "OPENAI_BASE_URL": sandbox.base_url,
           "RUNQ_HOME": str(home), "RUNQ_LOG_FORMAT": "json",
           "RUNQ_TOOL_MODULES": "examples.tools"}  # fmt: skip
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=(home / "worker.log").open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:
        client = Client(server.url, load_settings(redis_url=server.url, home=home))
        watcher = RunqWatcher(server.url)
        watcher.start()
        script = script_for(cfg.tool_rounds)
        log(f"profile: {jobs} runq_poll jobs on a solo worker under cProfile")
        ids = []
        for i in range(jobs):
            job_id = f"prof-{i:05d}"
            client.submit(PROMPT, job_id=job_id, tools=["calculator"] if script else None,
                          metadata={"sandbox_script": script} if script else None)  # fmt: skip
            watcher.add(job_id)
            ids.append(job_id)
        wait_for(lambda: all(j in watcher.seen for j in ids), cfg.timeout)
        watcher.halt.set()
    finally:
        from runq.worker.launcher import stop_process

        stop_process(proc, timeout=30)
        sandbox.stop()
        server.stop()
    if not prof.exists():
        return "(no profile written)"
    import io

    buf = io.StringIO()
    stats = pstats.Stats(str(prof), stream=buf)
    stats.strip_dirs().sort_stats("tottime").print_stats(25)
    # The first line names the profile file (a temporary path): leave it out.
    return "\n".join(line for line in buf.getvalue().splitlines() if str(prof) not in line)


# -- report ---------------------------------------------------------------------------------
def ratios(res: dict[str, dict[str, Any]]) -> dict[str, float]:
    def r(a: str, b: str) -> float:
        den = res.get(b, {}).get("jobs_per_s") or 0
        return round(res.get(a, {}).get("jobs_per_s", 0) / den, 3) if den else 0.0

    return {
        "runq_poll_vs_no_queue": r("runq_poll", "no_queue"),
        "runq_poll_vs_naive": r("runq_poll", "naive"),
        "runq_stream_vs_no_queue": r("runq_stream", "no_queue"),
        "runq_stream_vs_naive": r("runq_stream", "naive"),
        "runq_webhook_vs_no_queue": r("runq_webhook", "no_queue"),
        "runq_webhook_vs_naive": r("runq_webhook", "naive"),
        "no_queue_vs_naive": r("no_queue", "naive"),
    }


def run_scenario(cfg: Config, only: list[str], log: Callable[[str], None]) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for name in sorted(only, key=lambda spec: CONTENDERS.index(parse_contender(spec)[0])):
        t0 = time.time()
        res[name] = run_no_queue(cfg, log) if name == "no_queue" else run_celery(name, cfg, log)
        shown = [*FIELDS, "result_after_delivery_p50_ms", "polls_per_job"]
        log(f"{name}: {json.dumps({k: res[name][k] for k in shown if k in res[name]})} "
            f"({time.time() - t0:.0f}s)")  # fmt: skip
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="CI smoke run (< 3 minutes)")
    parser.add_argument("--full", action="store_true", help="N=5000")
    parser.add_argument("--jobs", type=int, help="N (default 1000; 5000 with --full)")
    parser.add_argument("--latency-ms", type=int, help="backend latency L (default 500)")
    parser.add_argument("--naive-jobs", type=int, help="cap on the naive contender's jobs")
    parser.add_argument(
        "--runq-pool",
        choices=["prefork", "threads"],
        default="prefork",
        help="runq workers' pool (threads: one process, --threads slots)",
    )
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument(
        "--poll-interval-max",
        type=float,
        help="RUNQ_POLL_INTERVAL_MAX for runq workers (long-latency runs)",
    )
    parser.add_argument(
        "--request-latency-ms",
        type=int,
        default=0,
        help="the sandbox's delay on every API request (a network to the backend)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="per contender, seconds")
    parser.add_argument("--only", default=",".join(CONTENDERS), help="contenders to run")
    parser.add_argument(
        "--no-zero-tools", action="store_true", help="skip the 0-tool-round scenario"
    )
    parser.add_argument("--no-network", action="store_true",
                        help="skip the 100 ms-per-request scenario (newcomer workers)")  # fmt: skip
    parser.add_argument("--network-only", action="store_true",
                        help="run only that scenario (two `runq worker`, no flags)")  # fmt: skip
    parser.add_argument(
        "--profile-jobs",
        type=int,
        default=None,
        help="jobs for the cProfile pass of runq_poll (0 = skip)",
    )
    parser.add_argument("--no-fairness", action="store_true",
                        help="skip the fairness scenario (bench.fairness)")  # fmt: skip
    parser.add_argument("--out", help="JSON output (default bench/results/latest.json)")
    parser.add_argument("--doc", help="Markdown report (default docs/benchmarks.md; quick: none)")
    parser.add_argument("--no-doc", action="store_true",
                        help="write only the JSON (side-by-side runs quoted by hand)")  # fmt: skip
    args = parser.parse_args(argv)

    if args.quick:
        n, latency, naive_n, prof_n = 30, 200, 4, 0
    else:
        n, latency, naive_n, prof_n = (5000 if args.full else 1000), 500, 50, 300
    n = args.jobs or n
    latency = args.latency_ms or latency
    naive_n = min(n, args.naive_jobs or naive_n)
    prof_n = prof_n if args.profile_jobs is None else args.profile_jobs
    out = Path(args.out) if args.out else RESULTS / ("quick.json" if args.quick else "latest.json")
    doc = Path(args.doc) if args.doc else (None if args.quick else ROOT / "docs" / "benchmarks.md")
    if args.no_doc or args.network_only:  # the generated page needs the headline scenario
        doc = None
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    command = "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])

    def log(msg: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="runq-bench-"))
    pool: dict[str, Any] = {
        "runq_pool": args.runq_pool,
        "threads": args.threads,
        "poll_interval_max": args.poll_interval_max,
        "timeout": args.timeout,
        "request_latency_ms": args.request_latency_ms,
    }
    base = Config(jobs=n, latency_ms=latency, tool_rounds=1, naive_jobs=naive_n, workdir=workdir,
                  **pool)  # fmt: skip
    try:
        scenarios: dict[str, Any] = {}
        report: dict[str, Any] = {}
        if not args.network_only:
            log(f"scenario: N={n} L={latency}ms, 1 tool round (naive on {naive_n} jobs)")
            headline = run_scenario(base, only, log)
            report.update({**headline, "ratios": ratios(headline)})
            scenarios["tool_rounds_1"] = headline
        if not args.quick and not args.no_network:
            net = Config(jobs=n, latency_ms=latency, tool_rounds=1, naive_jobs=naive_n,
                         **{**pool, "request_latency_ms": 100}, newcomer_workers=2,
                         workdir=workdir / "network")  # fmt: skip
            log(f"scenario: N={n} L={latency}ms, 1 tool round, 100 ms per request, "
                "runq as two `runq worker` with no flags")  # fmt: skip
            scenarios["network_100ms"] = run_scenario(net, only, log)
            scenarios["network_100ms"]["ratios"] = ratios(scenarios["network_100ms"])
        if not args.quick and not args.no_zero_tools and not args.network_only:
            zero = Config(jobs=n, latency_ms=latency, tool_rounds=0, naive_jobs=naive_n, **pool,
                          workdir=workdir / "zero")  # fmt: skip
            log(f"scenario: N={n} L={latency}ms, 0 tool rounds")
            scenarios["tool_rounds_0"] = {**run_scenario(zero, only, log)}
            scenarios["tool_rounds_0"]["ratios"] = ratios(scenarios["tool_rounds_0"])
        if not args.quick and not args.no_fairness and not args.network_only:
            from bench.fairness import run_fairness

            log(f"scenario: fairness, tenant A's {n} jobs then tenant B's 20, L={latency}ms")
            scenarios["fairness"] = run_fairness(a_jobs=n, latency_ms=latency, log=log,
                                                 workdir=workdir / "fairness")  # fmt: skip
        report["scenarios"] = scenarios
        wanted = prof_n and "runq_poll" in only and not args.network_only
        profile = profile_runq_poll(base, prof_n, log) if wanted else ""
        report["meta"] = {
            "command": command.strip(),
            "jobs": n, "latency_ms": latency, "naive_jobs": naive_n, "tool_rounds": 1,
            "request_latency_ms": args.request_latency_ms,
            "worker_shape": (
                "one celery worker, --pool prefork --concurrency 2 (2 pool processes)"
                if args.runq_pool == "prefork"
                else f"runq: one celery worker process, --pool threads -c {args.threads};"
                " naive: --pool prefork --concurrency 2"
            ),
            "machine": machine_info(),
        }  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
        log(f"wrote {out}")
        if profile:
            (out.parent / "profile_runq_poll.txt").write_text(profile)
        if doc is not None:
            from bench.report import write_markdown

            write_markdown(doc, report, profile)
            log(f"wrote {doc}")
    finally:
        if os.environ.get("RUNQ_BENCH_KEEP"):  # worker logs kept to study (bench/tasklog.py)
            log(f"kept {workdir}")
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
