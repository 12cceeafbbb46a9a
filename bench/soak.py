"""A long run of jobs through one `runq worker` as a newcomer starts it: does anything grow?

Jobs with one tool round go through the default worker shape (`runq worker`, no flags)
in batches, poll or webhook mode (with `runq webhooks` receiving the sandbox's
deliveries). After each batch the run notes every process's RSS (the worker's tree and
the receiver) and Redis's `used_memory` and key count. At the end it reports:

- the worker's RSS growth per 10,000 jobs over the second half of the run, where the
  interpreter's and the allocator's warm-up is over: a leak shows as a steady slope;
- what a finished job keeps in Redis until `RUNQ_RESULT_EXPIRES` (7 days by default):
  bytes of `used_memory` and keys per job, and per kind of key (`MEMORY USAGE` of a
  sample), which is what sizing Redis needs;
- every key with no TTL, by kind: only the fleet's own (queues, bindings, indexes) may
  have none, and their number must not grow with the jobs.

    python -m bench.soak                                   # 20,000 jobs, webhook mode
    python -m bench.soak --jobs 20000 --mode poll
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from bench.common import descendants, machine_info, rss_mb
from bench.run import BenchWebhooks, Config, sandbox_for, script_for, start_workers, stop_stack
from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.worker.launcher import EmbeddedRedis

# A key's kind: its name with every id in it (a job's, a response's, a Celery task's, a
# webhook delivery's, a number) replaced by `<id>`.
_ID = re.compile(r"(job_|resp_|msg_|wh_|call_|batch_)?[0-9a-f]{16,}|[0-9a-f-]{36}|\b\d+\b")
SAMPLE_PER_KIND = 50
WARM_UP_JOBS = 4


def kind_of(key: str) -> str:
    return _ID.sub("<id>", key)


def _trees_rss_mb(roots: list[int]) -> float:
    """The RSS of every process in the trees under `roots`, added up."""
    return sum(rss_mb(pid) for root in roots for pid in descendants(root))


def audit_keys(conn: redis.Redis, jobs: int) -> dict[str, Any]:
    """Keys by kind (Redis holds `jobs` finished jobs): how many a job, their memory a job
    and their TTL (from a sample of each kind), and the kinds with keys that have no TTL
    (every key's TTL is read)."""
    count: Counter[str] = Counter()
    no_ttl: Counter[str] = Counter()
    samples: dict[str, list[bytes]] = {}
    chunk: list[bytes] = []

    def read_ttls() -> None:
        pipe = conn.pipeline(transaction=False)
        for key in chunk:
            pipe.ttl(key)
        for key, ttl in zip(chunk, pipe.execute(), strict=True):
            if ttl == -1:
                no_ttl[kind_of(key.decode(errors="replace"))] += 1
        chunk.clear()

    for key in conn.scan_iter(count=2000):
        kind = kind_of(key.decode(errors="replace"))
        count[kind] += 1
        bucket = samples.setdefault(kind, [])
        if len(bucket) < SAMPLE_PER_KIND:
            bucket.append(key)
        chunk.append(key)
        if len(chunk) >= 2000:
            read_ttls()
    read_ttls()
    per_kind = {}
    for kind, n in count.most_common():
        sizes = [conn.memory_usage(k) or 0 for k in samples[kind]]
        ttls = sorted(conn.ttl(k) for k in samples[kind])
        per_kind[kind] = {
            "keys": n,
            "keys_per_job": round(n / jobs, 3),
            "bytes_per_key": round(sum(sizes) / len(sizes)),
            "bytes_per_job": round(n * sum(sizes) / len(sizes) / jobs),
            "ttl_s_median": ttls[len(ttls) // 2],  # -1: none
        }
    return {"by_kind": per_kind, "without_ttl": dict(no_ttl.most_common())}


def slope_per_10k(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of (jobs done, MB), in MB per 10,000 jobs."""
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return 10_000 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def run(jobs: int, batch: int, mode: str, latency_ms: int, log: Any) -> dict[str, Any]:
    cfg = Config(jobs=jobs, latency_ms=latency_ms, tool_rounds=1, naive_jobs=0,
                 newcomer_workers=1)  # fmt: skip
    home = cfg.workdir
    server = EmbeddedRedis(home).start()
    hooks = BenchWebhooks() if mode == "webhook" else None
    sandbox = sandbox_for(cfg, hooks).start()
    name = "runq_webhook" if mode == "webhook" else "runq_poll"
    workers = start_workers(name, cfg, server.url, sandbox.base_url, home)
    try:
        receiver = hooks.start(server.url, home) if hooks else None
        client = Client(server.url, load_settings(redis_url=server.url, home=home))
        conn = redis.Redis.from_url(server.url)
        ask: dict[str, Any] = {
            "mode": mode, "tools": ["calculator"], "metadata": {"sandbox_script": script_for(1)},
        }  # fmt: skip
        for n in range(WARM_UP_JOBS):  # the worker imports everything before the first figure
            client.submit(f"warm-up {n}", **ask).result(timeout=120)
        memory_before = int(conn.info("memory")["used_memory"])
        keys_before = conn.dbsize()
        samples: list[dict[str, Any]] = []
        statuses: Counter[str] = Counter()
        t0 = time.time()
        done = 0
        while done < jobs:
            size = min(batch, jobs - done)
            handles = [client.submit(f"question {done + i}", **ask) for i in range(size)]
            statuses.update(h.result(timeout=cfg.timeout)["status"] for h in handles)
            done += size
            sample = {
                "jobs": done,
                "elapsed_s": round(time.time() - t0, 1),
                "worker_rss_mb": round(_trees_rss_mb(workers.roots), 1),
                "receiver_rss_mb": round(rss_mb(receiver.proc.pid), 1)
                if receiver and receiver.proc else None,
                "redis_used_memory_mb": round(int(conn.info("memory")["used_memory"]) / 2**20, 1),
                "redis_keys": conn.dbsize(),
            }  # fmt: skip
            samples.append(sample)
            log(json.dumps(sample))
        memory_after = int(conn.info("memory")["used_memory"])
        keys_after = conn.dbsize()
        audit = audit_keys(conn, jobs + WARM_UP_JOBS)
    finally:
        stop_stack(workers, hooks, sandbox, server)
        shutil.rmtree(home, ignore_errors=True)
    second_half = [(s["jobs"], s["worker_rss_mb"]) for s in samples if s["jobs"] > jobs / 2]
    return {
        "command": "", "machine": machine_info(), "mode": mode, "jobs": jobs, "batch": batch,
        "latency_ms": latency_ms, "worker": "runq worker (no flags)",
        "succeeded": statuses.get("succeeded", 0), "statuses": dict(statuses),
        "worker_rss_first_mb": samples[0]["worker_rss_mb"],
        "worker_rss_last_mb": samples[-1]["worker_rss_mb"],
        "worker_rss_growth_mb_per_10k_jobs_second_half": round(slope_per_10k(second_half), 2),
        "redis_bytes_per_finished_job": round((memory_after - memory_before) / jobs),
        "redis_keys_per_finished_job": round((keys_after - keys_before) / jobs, 2),
        "keys": audit,
        "samples": samples,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2_000, help="jobs between two samples")
    parser.add_argument("--mode", choices=["poll", "webhook"], default="webhook")
    parser.add_argument("--latency-ms", type=int, default=200, help="the sandbox's run time")
    parser.add_argument("--out", help="JSON output (default: printed only)")
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    result = run(args.jobs, args.batch, args.mode, args.latency_ms, log)
    given = argv if argv is not None else sys.argv[1:]
    result["command"] = " ".join(["python -m bench.soak", *given])
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
        log(f"wrote {args.out}")
    else:
        print(text)
    return 0 if result["succeeded"] == args.jobs else 1


if __name__ == "__main__":
    raise SystemExit(main())
