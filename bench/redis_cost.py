"""What a job costs Redis itself: command time and CPU, by command, per job.

`bench.run` reports Redis CPU over its whole run, which includes its own watcher (an
`XREAD` over every pending job's stream) and `INFO` calls. This runs N jobs with one
scripted tool round on a fresh stack like `runq up`'s (embedded Redis, the sandbox at
500 ms, one prefork worker with 2 processes), with nothing else talking to Redis but
the producer waiting on each job's result, and prints `used_cpu` and `INFO
commandstats` per job.

    python -m bench.redis_cost            # 300 jobs
    python -m bench.redis_cost --jobs 1000
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import redis

from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.worker.launcher import EmbeddedRedis, SandboxProcess, WorkerProcess

SCRIPT = json.dumps([[{"name": "calculator", "arguments": {"expression": "6*7"}}]])


def _cpu_seconds(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def measure(jobs: int) -> dict[str, object]:
    home = Path(tempfile.mkdtemp(prefix="runq-redis-cost-"))
    server = EmbeddedRedis(home).start()
    sandbox = SandboxProcess(latency_ms=500).start()
    worker = WorkerProcess(
        server.url, sandbox.base_url, concurrency=2,
        env={"RUNQ_HOME": str(home)}, log_path=home / "worker.log",
    ).start()  # fmt: skip
    try:
        client = Client(server.url, load_settings(redis_url=server.url))
        ask = {"tools": ["calculator"], "metadata": {"sandbox_script": SCRIPT}}
        client.submit("warm-up", **ask).result(timeout=60)
        raw = redis.Redis.from_url(server.url)
        raw.config_resetstat()
        cpu_before = _cpu_seconds(raw)
        handles = [client.submit(f"question {n}", **ask) for n in range(jobs)]
        statuses = [h.result(timeout=600)["status"] for h in handles]
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
        "redis_cpu_ms_per_job": round(1000 * cpu_s / jobs, 2),
        "command_usec_per_job": round(sum(s["usec"] for s in stats.values()) / jobs, 1),
        "commands_per_job": round(sum(s["calls"] for s in stats.values()) / jobs, 2),
        "by_command": by_command,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    args = parser.parse_args(argv)
    result = measure(args.jobs)
    print(json.dumps(result, indent=2))
    return 0 if result["succeeded"] == args.jobs else 1


if __name__ == "__main__":
    raise SystemExit(main())
