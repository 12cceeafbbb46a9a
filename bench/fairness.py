"""`python -m bench.fairness`: does a tenant's backlog delay another tenant's jobs?

Tenant A submits N jobs, then tenant B submits 20. Same fleet (one runq worker,
prefork, concurrency 2), the sandbox answering each run after L ms. The figure is B's
time from submit to start (the job record's `queued_at` to `started_at`: the moment its
run is created), p50 and p95, against B submitting the same 20 jobs alone on an idle
fleet. The acceptance (issue 20): with fair admission B's p95 stays within 2x of B alone.

    python -m bench.fairness                       # N=5000, L=500 ms
    python -m bench.fairness --a-jobs 500          # a few minutes
    python -m bench.fairness --fifo                # also with RUNQ_FAIR_ADMISSION=false

Each mode gets a fresh Redis, sandbox and worker. A's backlog is not waited for: once
B's jobs have all started the mode ends (with fairness off, B waits for all of A's jobs
to start, which is the point of the comparison).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import ProbeSandbox, percentile
from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.worker.launcher import EmbeddedRedis, WorkerProcess

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "What is 2+2?"


def start_latencies(client: Client, ids: list[str]) -> list[float] | None:
    """Each job's submit-to-start seconds, or None while one has not started."""
    out = []
    for job_id in ids:
        timings = client.store.get(job_id).timings
        if "started_at" not in timings:
            return None
        out.append(timings["started_at"] - timings["queued_at"])
    return out


def wait_started(client: Client, ids: list[str], timeout: float) -> list[float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = start_latencies(client, ids)
        if found is not None:
            return found
        time.sleep(0.2)
    raise RuntimeError(f"{len(ids)} jobs did not all start within {timeout:.0f}s")


def run_mode(
    name: str, a_jobs: int, b_jobs: int, latency_ms: int, workdir: Path, fair: bool,
    log: Callable[[str], None], timeout: float,
) -> dict[str, Any]:  # fmt: skip
    """One mode on a fresh stack: B alone, then A's backlog followed by B."""
    home = workdir / name
    home.mkdir(parents=True, exist_ok=True)
    server = EmbeddedRedis(home).start()
    sandbox = ProbeSandbox(latency_ms=latency_ms).start()
    env = {"RUNQ_HOME": str(home), "RUNQ_LOG_FORMAT": "json", "RUNQ_LOG_LEVEL": "WARNING",
           "RUNQ_FAIR_ADMISSION": "true" if fair else "false"}  # fmt: skip
    worker = WorkerProcess(
        server.url,
        sandbox.base_url,
        queues="runs,tools",
        concurrency=2,
        pool="prefork",
        env=env,
        log_path=home / "worker.log",
    ).start()
    try:
        settings = load_settings(redis_url=server.url, home=home, fair_admission=fair)
        client = Client(server.url, settings)
        warm = [client.submit(PROMPT, tenant="warm").id for _ in range(4)]
        wait_started(client, warm, 120)
        alone_ids = [client.submit(PROMPT, tenant="tenant-b").id for _ in range(b_jobs)]
        alone = wait_started(client, alone_ids, timeout)
        for job_id in alone_ids:  # an idle fleet again before the backlog
            client.get_job(job_id).result(timeout=timeout)
        log(f"{name}: B alone p95 {percentile(alone, 95) * 1000:.0f} ms; submitting A's "
            f"{a_jobs} jobs, then B's {b_jobs}")  # fmt: skip
        t0 = time.time()
        for _ in range(a_jobs):
            client.submit(PROMPT, tenant="tenant-a")
        submit_a_s = time.time() - t0
        behind_ids = [client.submit(PROMPT, tenant="tenant-b").id for _ in range(b_jobs)]
        behind = wait_started(client, behind_ids, timeout)
        return {
            "fair_admission": fair,
            "a_jobs": a_jobs,
            "b_jobs": b_jobs,
            "latency_ms": latency_ms,
            "submit_a_s": round(submit_a_s, 2),
            "b_alone_p50_ms": round(percentile(alone, 50) * 1000),
            "b_alone_p95_ms": round(percentile(alone, 95) * 1000),
            "b_behind_a_p50_ms": round(percentile(behind, 50) * 1000),
            "b_behind_a_p95_ms": round(percentile(behind, 95) * 1000),
            "ratio_p95": round(percentile(behind, 95) / max(percentile(alone, 95), 1e-3), 2),
        }
    finally:
        worker.stop()
        sandbox.stop()
        server.stop()


def run_fairness(
    *, a_jobs: int, b_jobs: int = 20, latency_ms: int = 500, workdir: Path,
    log: Callable[[str], None], fifo: bool = False, timeout: float = 900.0,
) -> dict[str, Any]:  # fmt: skip
    """The `fairness` scenario of `bench.run`: fair admission (and FIFO when asked)."""
    found = {"fair": run_mode("fair", a_jobs, b_jobs, latency_ms, workdir, True, log, timeout)}
    log(f"fairness (fair): {json.dumps(found['fair'])}")
    if fifo:
        found["fifo"] = run_mode("fifo", a_jobs, b_jobs, latency_ms, workdir, False, log, timeout)
        log(f"fairness (fifo): {json.dumps(found['fifo'])}")
    return found


def markdown(found: dict[str, Any]) -> list[str]:
    """The scenario's section of docs/benchmarks.md (`bench.report`)."""
    fair = found["fair"]
    parts = [
        "## Fairness between tenants",
        "",
        f"Tenant A submits {fair['a_jobs']} jobs, then tenant B submits {fair['b_jobs']}; one"
        " worker (prefork, concurrency 2), L="
        f"{fair['latency_ms']} ms. B's submit-to-start time (`queued_at` to `started_at` in"
        " the job records) against B submitting the same jobs alone (`bench.fairness`).",
        "",
        "| admission | B alone p50 | B alone p95 | B behind A p50 | B behind A p95 | p95 ratio |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in found.items():
        parts.append(
            f"| {name} | {row['b_alone_p50_ms']} ms | {row['b_alone_p95_ms']} ms | "
            f"{row['b_behind_a_p50_ms']} ms | {row['b_behind_a_p95_ms']} ms | "
            f"{row['ratio_p95']} |"
        )
    return [*parts, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fairness",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--a-jobs", type=int, default=5000, help="tenant A's backlog")
    parser.add_argument("--b-jobs", type=int, default=20, help="tenant B's jobs")
    parser.add_argument("--latency-ms", type=int, default=500, help="the sandbox's run time")
    parser.add_argument("--fifo", action="store_true", help="also with fair admission off")
    parser.add_argument("--timeout", type=float, default=900.0, help="per wait, seconds")
    parser.add_argument("--out", help="JSON output (default bench/results/fairness.json)")
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="runq-bench-fair-"))
    found = run_fairness(
        a_jobs=args.a_jobs,
        b_jobs=args.b_jobs,
        latency_ms=args.latency_ms,
        workdir=workdir,
        log=log,
        fifo=args.fifo,
        timeout=args.timeout,
    )
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / "fairness.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(found, indent=2) + "\n")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
