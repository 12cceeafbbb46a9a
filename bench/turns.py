"""Turns on one conversation sent together: how long each waits after the turn before it.

A job on a conversation waits at its start until the job before it has ended; the gap
between one turn's end and the next turn's start is what a chat user waits on top of
the backend when messages queue up. `--conversations` conversations get `--turns`
turns each, all submitted at once, on `bench.run`'s stack (embedded Redis, the probe
sandbox at `--latency-ms`, one worker `--pool prefork -c 2`). Reported: the gap's p50,
p95 and max over every hand-over, the time to the last turn's end, and the Redis
commands a job cost (`INFO commandstats`, this harness's own reads left out): with long
runs, mostly what the turns waiting behind them cost.

    python -m bench.turns --conversations 10 --turns 6 --out bench/results/turns.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from itertools import pairwise
from pathlib import Path
from typing import Any

import redis

from bench.common import redis_counters, redis_delta
from bench.run import Config, sandbox_for, start_workers, stop_stack
from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.runs import keys
from runq.runs.job import TERMINAL
from runq.worker.launcher import EmbeddedRedis


def measure(conversations: int, turns: int, latency_ms: int) -> dict[str, Any]:
    cfg = Config(jobs=conversations * turns, latency_ms=latency_ms, tool_rounds=0, naive_jobs=0)
    home = Path(tempfile.mkdtemp(prefix="runq-turns-"))
    server = EmbeddedRedis(home).start()
    sandbox = sandbox_for(cfg).start()
    workers = start_workers("runq_poll", cfg, server.url, sandbox.base_url, home)
    try:
        client = Client(server.url, load_settings(redis_url=server.url, home=home))
        for n in range(4):  # every pool process imports everything before the clock runs
            client.submit(f"warm-up {n}").result(timeout=120)
        lines: list[tuple[str, list[str]]] = [
            (f"talk-{uuid.uuid4().hex[:12]}", []) for _ in range(conversations)
        ]
        conn = redis.Redis.from_url(server.url)
        counters_before = redis_counters(conn)
        started = time.time()
        for turn in range(1, turns + 1):  # turn n of every conversation, then turn n + 1
            for name, ids in lines:
                ids.append(client.submit(f"Turn {turn}?", conversation=name).id)
        records, own = _wait_for(conn, [i for _, ids in lines for i in ids])
        elapsed = time.time() - started
        delta = redis_delta(counters_before, redis_counters(conn))
        # Less this harness's own: its MGETs, and the two INFOs of the first reading.
        commands = sum(v for name, v in delta.items() if name != "__cpu_s") - own - 2
    finally:
        stop_stack(workers, None, sandbox, server)
        shutil.rmtree(home, ignore_errors=True)
    gaps = []
    for _, ids in lines:
        timings = [records[i]["timings"] for i in ids]
        gaps += [(b["started_at"] - a["finished_at"]) * 1000 for a, b in pairwise(timings)]
    gaps.sort()
    return {
        "conversations": conversations, "turns": turns, "latency_ms": latency_ms,
        "succeeded": sum(1 for r in records.values() if r["status"] == "succeeded"),
        "jobs": len(records), "seconds_to_last_end": round(elapsed, 2),
        "redis_commands_per_job": round(commands / len(records), 1),
        "gap_ms": {"p50": round(statistics.median(gaps), 1),
                   "p95": round(gaps[int(0.95 * (len(gaps) - 1))], 1),
                   "max": round(gaps[-1], 1)},
    }  # fmt: skip


def _wait_for(
    conn: redis.Redis, ids: list[str], timeout: float = 600
) -> tuple[dict[str, Any], int]:
    """The jobs' ended records, and how many commands this waiting took (one `MGET` a
    look)."""
    records: dict[str, Any] = {}
    looks = 0
    deadline = time.time() + timeout
    while len(records) < len(ids) and time.time() < deadline:
        pending = [job_id for job_id in ids if job_id not in records]
        looks += 1
        for job_id, raw in zip(pending, conn.mget([keys.job(i) for i in pending]), strict=True):
            record = json.loads(raw) if raw else {}
            if record.get("status") in TERMINAL:
                records[job_id] = record
        time.sleep(0.1)
    if len(records) < len(ids):
        raise SystemExit(f"{len(ids) - len(records)} jobs did not end within {timeout} s")
    return records, looks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=10)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--latency-ms", type=int, default=500)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = measure(args.conversations, args.turns, args.latency_ms)
    result["command"] = "python -m bench.turns " + " ".join(sys.argv[1:])
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
