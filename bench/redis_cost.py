"""What a job costs Redis itself: command time and CPU, by command, per job.

`bench.run` reports Redis CPU over its whole run, which includes its own watcher (an
`XREAD` over every pending job's stream) and `INFO` calls. This runs N jobs with one
scripted tool round on a fresh stack (embedded Redis, the sandbox at 500 ms, one
worker on `runs,tools`), with nothing else talking to Redis but the producer waiting on
each job's result, and prints `used_cpu` and `INFO commandstats` per job, and the
worker's CPU per job (its whole process tree, from `/proc`).

The worker's shape is pinned (`--pool prefork -c 2` unless told otherwise), so two
versions of runq measured one after the other differ only in their code.

    python -m bench.redis_cost            # 300 jobs
    python -m bench.redis_cost --jobs 1000 --pool threads --concurrency 64
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import redis

from bench.common import ProcWatch
from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.worker.launcher import EmbeddedRedis, SandboxProcess, WorkerProcess

SCRIPT = json.dumps([[{"name": "calculator", "arguments": {"expression": "6*7"}}]])


def _cpu_seconds(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def measure(jobs: int, pool: str = "prefork", concurrency: int = 2) -> dict[str, object]:
    home = Path(tempfile.mkdtemp(prefix="runq-redis-cost-"))
    server = EmbeddedRedis(home).start()
    sandbox = SandboxProcess(latency_ms=500).start()
    env = {"RUNQ_HOME": str(home), "RUNQ_TOOL_MODULES": "examples.tools"}
    worker = WorkerProcess(
        server.url, sandbox.base_url, concurrency=concurrency, pool=pool,
        env=env, log_path=home / "worker.log",
    ).start()  # fmt: skip
    try:
        client = Client(server.url, load_settings(redis_url=server.url))
        ask = {"tools": ["calculator"], "metadata": {"sandbox_script": SCRIPT}}
        for n in range(4):  # every pool process imports everything before the clock runs
            client.submit(f"warm-up {n}", **ask).result(timeout=60)
        raw = redis.Redis.from_url(server.url)
        raw.config_resetstat()
        cpu_before = _cpu_seconds(raw)
        assert worker.proc is not None
        watch = ProcWatch([worker.proc.pid]).start()
        handles = [client.submit(f"question {n}", **ask) for n in range(jobs)]
        statuses = [h.result(timeout=600)["status"] for h in handles]
        watch.stop()
        cpu_s = _cpu_seconds(raw) - cpu_before
        stats = raw.info("commandstats")
    finally:
        worker.stop()
        sandbox.stop()
        server.stop()
    by_command = {
        name.removeprefix("cmdstat_"): {
            "calls_per_job": round(s["calls"] / jobs, 2),
            "usec_per_job": round(s["usec"] / jobs, 1),
        }
        for name, s in sorted(stats.items(), key=lambda kv: -kv[1]["usec"])
    }
    return {
        "jobs": jobs,
        "succeeded": statuses.count("succeeded"),
        "worker": f"--pool {pool} -c {concurrency}",
        "worker_cpu_ms_per_job": round(1000 * watch.cpu_used() / jobs, 2),
        "redis_cpu_ms_per_job": round(1000 * cpu_s / jobs, 2),
        "command_usec_per_job": round(sum(s["usec"] for s in stats.values()) / jobs, 1),
        "commands_per_job": round(sum(s["calls"] for s in stats.values()) / jobs, 2),
        "by_command": by_command,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--pool", default="prefork")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args(argv)
    result = measure(args.jobs, args.pool, args.concurrency)
    print(json.dumps(result, indent=2))
    return 0 if result["succeeded"] == args.jobs else 1


if __name__ == "__main__":
    raise SystemExit(main())
