"""Many background runs in flight at once, waiting for their webhooks: what waiting costs.

N jobs (a prompt, no tools) whose background responses each take `--run-seconds` at the
sandbox, which signs and sends a webhook when each ends; `runq webhooks` receives them
and wakes the jobs. The workers (`--pool prefork -c 2` unless told) run in webhook mode.

Measured:
- the **waiting window**: from the moment every run is created (the sandbox holds all N)
  to the moment the first one ends. In it nothing happens but waiting, so its Redis
  commands (`INFO commandstats`, the workers' pump and sweeper included), worker CPU
  (the worker and receiver process trees, from `/proc`) and Redis CPU, divided by
  N x the window's minutes, are the cost of one run-minute of waiting;
- Redis memory per job: `used_memory` in the window less `used_memory` before the
  first submit, divided by N (the record, its events, the webhook index, the lease,
  the safety poll's entry, ...);
- the sandbox's peak of responses in flight, and every job's end (all must succeed).

The safety poll is RUNQ_SAFETY_POLL_INTERVAL (`--safety-interval`, by default 1.5 x the
run's length, so no look falls in the window: see docs/webhooks.md for choosing it) and
the job deadline 2 x the run's length plus 10 minutes.

    python -m bench.inflight --runs 200 --run-seconds 60           # a minute or two
    python -m bench.inflight --runs 20000 --run-seconds 600 --mode webhook
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis

from bench.common import ProcWatch, redis_counters, redis_delta
from bench.run import BenchWebhooks, Config, RunqWatcher, sandbox_for, start_workers, stop_stack
from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.worker.launcher import EmbeddedRedis

PROMPT = "Summarize the quarterly report."


def _memory(conn: redis.Redis) -> int:
    return int(conn.info("memory")["used_memory"])


def run(
    runs: int, run_seconds: float, mode: str, safety: float | None, pool: str, concurrency: int,
    submitters: int, log: Any,
) -> dict[str, Any]:  # fmt: skip
    if mode != "webhook":
        raise SystemExit("--mode: only webhook is measured here (poll mode polls while waiting)")
    safety = safety if safety is not None else run_seconds * 1.5
    cfg = Config(jobs=runs, latency_ms=int(run_seconds * 1000), tool_rounds=0, naive_jobs=0,
                 runq_pool=pool, concurrency=concurrency, threads=concurrency)  # fmt: skip
    home = Path(tempfile.mkdtemp(prefix="runq-inflight-"))
    server = EmbeddedRedis(home).start()
    hooks = BenchWebhooks()
    sandbox = sandbox_for(cfg, hooks).start()
    env = f"RUNQ_SAFETY_POLL_INTERVAL={safety};RUNQ_SAFETY_POLL_MAX={max(safety, 600.0)}"
    workers = start_workers(f"runq_webhook[{env}]", cfg, server.url, sandbox.base_url, home)
    try:
        receiver = hooks.start(server.url, home)
        assert receiver.proc is not None
        roots = [*workers.roots, receiver.proc.pid]
        client = Client(server.url, load_settings(redis_url=server.url, home=home))
        deadline = run_seconds * 2 + 600
        conn = redis.Redis.from_url(server.url)
        watcher = RunqWatcher(server.url)
        watcher.start()
        memory_before = _memory(conn)
        ids = [f"inflight-{i:06d}" for i in range(runs)]

        def submit(part: list[str]) -> None:
            for job_id in part:
                client.submit(PROMPT, job_id=job_id, mode=mode, deadline=deadline)
                watcher.add(job_id)

        log(f"submitting {runs} jobs, runs of {run_seconds:g} s, safety poll {safety:g} s")
        t0 = time.time()
        threads = [threading.Thread(target=submit, args=(ids[k::submitters],))
                   for k in range(submitters)]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log(f"submitted in {time.time() - t0:.0f} s; waiting for every run to be created")
        created_by = t0 + run_seconds  # after this the first runs end: too late
        while time.time() < created_by:
            in_flight = int(sandbox.stats().get("in_flight_responses", 0))
            if in_flight >= runs:
                break
            time.sleep(1.0)
        all_created = time.time()
        stats = sandbox.stats()
        if int(stats.get("in_flight_responses", 0)) < runs:
            got = stats.get("in_flight_responses")
            log(f"only {got} of {runs} runs in flight after {run_seconds:g} s: "
                "the starts are slower than a run (use fewer runs)")  # fmt: skip
        timelines = sandbox.timelines()
        first_end = min((t["done_at"] for t in timelines.values()), default=all_created)
        window_end = first_end - 2.0  # a margin before the first end and its webhook
        log(f"all created after {all_created - t0:.0f} s; waiting window "
            f"{max(0.0, window_end - all_created):.0f} s")  # fmt: skip
        watch = ProcWatch(roots).start()
        before = redis_counters(conn)
        xread_before = watcher.commands
        window_start = time.time()
        memory_peak = _memory(conn)
        while time.time() < window_end:
            memory_peak = max(memory_peak, _memory(conn))
            time.sleep(min(5.0, max(0.0, window_end - time.time())))
        after = redis_counters(conn)
        window = time.time() - window_start
        watch.stop()
        delta = redis_delta(before, after)
        redis_cpu = delta.pop("__cpu_s", 0.0)
        delta.pop("info", None)  # this module's own
        delta["xread"] = delta.get("xread", 0.0) - (watcher.commands - xread_before)
        commands = sum(delta.values())
        run_minutes = runs * window / 60.0
        log(f"window over ({window:.0f} s, {commands:.0f} commands); waiting for every end")
        finish_by = time.time() + run_seconds + max(600.0, runs / 5)
        while time.time() < finish_by and len(watcher.seen) < runs:
            time.sleep(1.0)
        watcher.halt.set()
        statuses = [watcher.status.get(j) for j in ids]
        final = sandbox.stats()
        polls = [client.store.get(j).polls for j in ids[: min(runs, 500)]]
        return {
            "runs": runs, "run_seconds": run_seconds, "mode": mode, "safety_poll_s": safety,
            "worker": f"{pool} -c {concurrency}", "submit_s": round(all_created - t0, 1),
            "window_s": round(window, 1),
            "sandbox_peak_in_flight": int(final.get("peak_in_flight_responses", 0)),
            "succeeded": sum(1 for s in statuses if s == "succeeded"),
            "ended": sum(1 for s in statuses if s),
            "redis_cmds_per_run_minute": round(commands / run_minutes, 4) if run_minutes else None,
            "worker_cpu_ms_per_run_minute": round(watch.cpu_used() * 1000 / run_minutes, 4)
            if run_minutes else None,
            "redis_cpu_ms_per_run_minute": round(redis_cpu * 1000 / run_minutes, 4)
            if run_minutes else None,
            # What the fleet spends whatever the number of runs (pump, sweeper, heartbeats).
            "redis_cmds_per_s_in_window": round(commands / window, 2) if window > 0 else None,
            "redis_memory_bytes_per_job": round((memory_peak - memory_before) / runs),
            "redis_cmds_in_window_by_name": {k: v for k, v in
                                             sorted(delta.items(), key=lambda kv: -kv[1]) if v},
            "polls_per_job": round(sum(polls) / max(len(polls), 1), 3),
            "webhooks": final.get("webhooks"),
        }  # fmt: skip
    finally:
        stop_stack(workers, hooks, sandbox, server)
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.inflight",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--run-seconds", type=float, default=600.0)
    parser.add_argument("--mode", default="webhook", choices=["webhook"])
    parser.add_argument("--safety-interval", type=float, help="default: 1.5 x --run-seconds")
    parser.add_argument("--pool", default="prefork", choices=["prefork", "threads"])
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--submitters", type=int, default=4, help="producer threads")
    parser.add_argument("--out", help="JSON output (default: printed only)")
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[inflight {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    result = run(args.runs, args.run_seconds, args.mode, args.safety_interval, args.pool,
                 args.concurrency, args.submitters, log)  # fmt: skip
    result["command"] = "python -m bench.inflight " + " ".join(
        argv if argv is not None else __import__("sys").argv[1:]
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if result["succeeded"] == args.runs else 1


if __name__ == "__main__":
    raise SystemExit(main())
