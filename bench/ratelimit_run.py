"""The rate-limit run: does runq's global limiter use a provider's limit without hitting it?

The sandbox enforces `--rpm` per API key (every `/v1` request counts, polls included,
and it answers 429 with `retry-after` when the bucket is empty). Four runq worker
processes (two workers, `--concurrency 2` each) share one Redis token bucket set to the
same limit (`RUNQ_RPM`). The run reports the backend requests per minute while jobs were
running (target: at least 90 % of the limit) and the share of requests answered 429
(target: at most 2 %).

    python -m bench.ratelimit_run            # 1000 jobs at 600 rpm (about 4 minutes)
    python -m bench.ratelimit_run --quick    # 120 jobs at 120 rpm, a smoke run (a minute)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.report import replace_section
from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.worker.launcher import EmbeddedRedis, SandboxProcess, WorkerProcess

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- ratelimit-run:begin -->", "<!-- ratelimit-run:end -->"


def _stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/sandbox/stats") as resp:
        return dict(json.loads(resp.read()))


def run(jobs: int, rpm: int, latency_ms: int, timeout: float) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="runq-ratelimit-"))
    redis_server = EmbeddedRedis(home).start()
    sandbox = SandboxProcess(latency_ms=latency_ms, extra_args=["--rpm", str(rpm)]).start()
    env = {"RUNQ_HOME": str(home), "RUNQ_LOG_FORMAT": "json", "RUNQ_RPM": str(rpm)}
    workers = [
        WorkerProcess(redis_server.url, sandbox.base_url, concurrency=2, env=env,
                      name=f"rl{i}-{os.getpid()}@%h", log_path=home / f"worker{i}.log").start()
        for i in range(2)
    ]  # fmt: skip
    try:
        client = Client(redis_server.url, load_settings(redis_url=redis_server.url, home=home))
        started = time.time()
        handles = [client.submit(f"rate limit job {i}") for i in range(jobs)]
        results = [h.result(timeout=max(1.0, timeout - (time.time() - started))) for h in handles]
        finished = max(datetime.fromisoformat(r["timings"]["finished_at"]).timestamp()
                       for r in results)  # fmt: skip
        stats = _stats(sandbox.base_url)
    finally:
        for worker in workers:
            worker.stop()
        sandbox.stop()
        redis_server.stop()
    by_status: dict[str, int] = {}
    for route, count in stats.get("requests", {}).items():
        if " /v1/" in route:
            status = route.rsplit(" ", 1)[-1]
            by_status[status] = by_status.get(status, 0) + count
    total = sum(by_status.values())
    limited = by_status.get("429", 0)
    minutes = (finished - started) / 60.0
    answered = total - limited
    # The bucket starts full (one minute's worth): whatever was answered beyond that had
    # to be refilled during the run, so it measures the sustained rate.
    sustained = max(0, answered - rpm) / minutes if minutes else 0.0
    return {
        "command": " ".join(["python -m bench.ratelimit_run", *sys.argv[1:]]),
        "jobs": jobs,
        "rpm_limit": rpm,
        "latency_ms": latency_ms,
        "worker_processes": 4,
        "succeeded": sum(r["status"] == "succeeded" for r in results),
        "duration_s": round(finished - started, 2),
        "backend_requests": total,
        "requests_429": limited,
        "share_429_pct": round(100.0 * limited / total, 2) if total else 0.0,
        "requests_per_min": round(answered / minutes, 1) if minutes else 0.0,
        "sustained_requests_per_min": round(sustained, 1),
        "utilisation_pct": round(100.0 * sustained / rpm, 1),
        "requests_by_status": by_status,
    }


def write_doc(result: dict[str, Any]) -> None:
    r = result
    sustained = f"{r['sustained_requests_per_min']} ({r['utilisation_pct']} %)"
    limited = f"{r['requests_429']} of {r['backend_requests']} ({r['share_429_pct']} %)"
    section = f"""{BEGIN}
## Rate-limit run

`{result["command"]}` — {result["jobs"]} jobs (no tool round) against the sandbox limited
to {result["rpm_limit"]} requests per minute per key (polls count), four runq worker
processes sharing one Redis token bucket (`RUNQ_RPM={result["rpm_limit"]}`), backend
latency {result["latency_ms"]} ms.

| | target | measured |
|---|---|---|
| jobs succeeded | | {result["succeeded"]} / {result["jobs"]} |
| sustained backend requests per minute | ≥ 90 % of {r["rpm_limit"]} | {sustained} |
| all answered requests per minute (incl. the initial burst) | | {result["requests_per_min"]} |
| requests answered 429 | ≤ 2 % | {limited} |
| duration | | {result["duration_s"]} s |

"Sustained" counts the requests answered beyond the bucket's initial minute of burst,
over the whole run: they had to be earned at the limit's rate. Raw JSON:
`bench/results/ratelimit.json`.
{END}"""
    replace_section(DOC, BEGIN, END, section, "Reliability")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rpm", type=int, help="the limit (default 600; 120 with --quick)")
    parser.add_argument("--latency-ms", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--quick", action="store_true", help="120 jobs; no docs written")
    args = parser.parse_args(argv)
    jobs = 120 if args.quick else args.jobs
    # The bucket starts with a minute's worth: a quick run must ask for more than that,
    # or it measures the burst and never the limit.
    rpm = args.rpm if args.rpm is not None else (120 if args.quick else 600)
    result = run(jobs, rpm, args.latency_ms, args.timeout)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "ratelimit-quick.json" if args.quick else "ratelimit.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    if not args.quick:
        write_doc(result)
    print(json.dumps(result, indent=2))
    return 0 if result["succeeded"] == jobs else 1


if __name__ == "__main__":
    sys.exit(main())
