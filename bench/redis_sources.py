"""Where a job's Redis commands go, by source: `MONITOR` around N jobs, each command
attributed by its key or channel (Celery's broker and kombu's ack emulation, Celery's
task events, Celery's result backend, runq's job store, metrics, delays, webhooks, ...).

`INFO commandstats` (what `bench.run` counts) also counts the commands a Lua script runs
inside Redis; here those are shown apart ("in scripts") from the commands a client sends
("sent"), since only the latter are round trips.

The stack is `bench.run`'s: embedded Redis, the probe sandbox at 500 ms, one worker
(`--pool prefork -c 2`) on `runs,tools`; in webhook mode the sandbox sends its webhooks
to `runq webhooks`. The jobs have one scripted `calculator` round. Commands of the
connection this module waits on are left out; the workers' pump (about twice a second
per worker, whatever the load) is shown as its own source.

    python -m bench.redis_sources --mode webhook --jobs 50
    python -m bench.redis_sources --mode poll --jobs 50 --env RUNQ_TASK_EVENTS=false
    python -m bench.redis_sources --mode webhook --jobs 5 --trace commands.txt
    python -m bench.redis_sources --mode stream --jobs 50   # text deltas through the job store
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from bench.run import (
    PROMPT,
    BenchWebhooks,
    Config,
    sandbox_for,
    script_for,
    start_workers,
    stop_stack,
)
from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.runs import keys
from runq.runs.job import TERMINAL
from runq.worker.launcher import EmbeddedRedis

QUEUE_COMMANDS = {"brpop", "lpush", "rpush", "llen", "lindex", "lpop", "rpop", "lrange"}
GROUPS = (
    ("runq:job:", "job store"), ("runq:lock:", "job store"), ("runq:events:", "job store"),
    ("runq:seq:", "job store"), ("runq:leases", "job store"), ("runq:jobs", "job store"),
    ("runq:idem:", "job store"), ("runq:cancel:", "job store"),
    ("runq:metrics", "metrics"), ("runq:delayed", "delays (pump)"), ("runq:wakes", "wakes"),
    ("runq:looks", "safety looks"),
    ("runq:webhook:", "webhooks"), ("runq:fair", "admission"), ("runq:budget", "admission"),
    ("runq:tenant:", "admission"), ("runq:tools:", "tool calls"), ("runq:effects:", "tool calls"),
    ("runq:approvals:", "tool calls"), ("runq:rl:", "rate limit / breaker"),
    ("runq:cb:", "rate limit / breaker"), ("runq:conv", "conversations"),
    ("runq:turnnext:", "conversations"),
    ("runq:sweeper", "sweeper"), ("runq:batch", "batcher"), ("runq:toolcatalog", "catalogs"),
    ("runq:chaincatalog", "catalogs"), ("runq:cache:", "response cache"),
    ("celery-task-meta-", "Celery result backend"), ("unacked", "Celery broker (kombu)"),
    ("_kombu.", "Celery broker (kombu)"),
)  # fmt: skip


def source_of(command: str, args: list[str]) -> str | None:
    """The source a command belongs to, or None when only its neighbours say (MULTI)."""
    name = command.lower()
    if name in ("multi", "exec", "discard", "watch", "unwatch"):
        return None
    if name in ("evalsha", "eval", "fcall"):
        args = args[2:] if len(args) > 2 and args[1] != "0" else []
    if name == "publish" and args:
        channel = args[0]
        if "celeryev" in channel:
            return "Celery task events"
        if channel.startswith("celery-task-meta-"):
            return "Celery result backend"
    if not args:
        return "connection (ping, time, client...)"
    key = args[0]
    if name in QUEUE_COMMANDS and not key.startswith("runq:"):
        return "Celery broker (kombu)"
    for prefix, group in GROUPS:
        if key.startswith(prefix):
            return group
    return f"other ({key.split(':')[0][:24]})"


class Monitor(threading.Thread):
    """Counts MONITOR lines by source, sent and in scripts, leaving out one client port."""

    def __init__(self, url: str, skip_port: int, trace: list[str] | None = None) -> None:
        super().__init__(daemon=True)
        self.trace = trace  # every line counted, as MONITOR printed it (`--trace`)
        self.conn = redis.Redis.from_url(url, decode_responses=True)
        self.skip_port = skip_port
        self.sent: Counter[str] = Counter()
        self.scripted: Counter[str] = Counter()
        self.by_command: Counter[str] = Counter()
        self.detail: Counter[str] = Counter()  # "source: command (sent|lua)"
        self.halt = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        pending: dict[str, int] = {}  # client -> MULTI/EXEC seen before their source
        last: dict[str, str] = {}
        with self.conn.monitor() as monitor:
            self.ready.set()
            for entry in monitor.listen():
                if self.halt.is_set():
                    return
                if str(entry.get("client_port")) == str(self.skip_port):
                    continue
                words = entry["command"].split(" ")
                command, args = words[0].lower(), [w.strip('"') for w in words[1:]]
                if command == "monitor":
                    continue
                lua = entry.get("client_type") == "lua"
                client = (
                    "lua" if lua else f"{entry.get('client_address')}:{entry.get('client_port')}"
                )
                source = source_of(command, args)
                if source is None:  # MULTI before its commands, EXEC after them
                    if command == "exec" and client in last:
                        source = last[client]
                    else:
                        pending[client] = pending.get(client, 0) + 1
                        continue
                last[client] = source
                if self.trace is not None:
                    where = "lua" if lua else client
                    self.trace.append(f"{entry.get('time')} {where} {entry['command'][:300]}")
                counter = self.scripted if lua else self.sent
                counter[source] += 1 + (0 if lua else pending.pop(client, 0))
                self.by_command[command] += 1
                self.detail[f"{source}: {command}{' (lua)' if lua else ''}"] += 1


def measure(
    mode: str, jobs: int, env: dict[str, str], trace: list[str] | None = None
) -> dict[str, Any]:
    cfg = Config(jobs=jobs, latency_ms=500, tool_rounds=1, naive_jobs=0)
    home = Path(tempfile.mkdtemp(prefix="runq-redis-sources-"))
    name = "runq_webhook" if mode == "webhook" else "runq_poll"
    spec = name + ("[" + ";".join(f"{k}={v}" for k, v in env.items()) + "]" if env else "")
    server = EmbeddedRedis(home).start()
    hooks = BenchWebhooks() if mode == "webhook" else None
    sandbox = sandbox_for(cfg, hooks).start()
    workers = start_workers(spec, cfg, server.url, sandbox.base_url, home)
    try:
        if hooks is not None:
            hooks.start(server.url, home)
        client = Client(server.url, load_settings(redis_url=server.url, home=home))
        ask: dict[str, Any] = {
            "mode": mode, "tools": ["calculator"],
            "metadata": {"sandbox_script": script_for(1)},
        }  # fmt: skip
        for n in range(4):  # every pool process imports everything before counting
            client.submit(f"warm-up {n}", **ask).result(timeout=120)
        waiter = redis.Redis.from_url(server.url, single_connection_client=True)
        waiter.ping()
        assert waiter.connection is not None and waiter.connection._sock is not None
        monitor = Monitor(server.url, waiter.connection._sock.getsockname()[1], trace)
        monitor.start()
        monitor.ready.wait(10)
        started = time.time()
        ids = [client.submit(PROMPT, **ask).id for _ in range(jobs)]
        statuses: dict[str, str] = {}
        deadline = time.time() + 600
        while len(statuses) < jobs and time.time() < deadline:
            for job_id in ids:
                if job_id not in statuses:
                    raw = waiter.get(keys.job(job_id))
                    status = json.loads(raw)["status"] if raw else ""
                    if status in TERMINAL:
                        statuses[job_id] = status
            time.sleep(0.2)
        elapsed = time.time() - started
        time.sleep(0.5)  # the last acks and events
        monitor.halt.set()
        waiter.ping()  # one more line so the monitor sees its halt
    finally:
        stop_stack(workers, hooks, sandbox, server)
        shutil.rmtree(home, ignore_errors=True)
    per_job = {
        src: {"sent": round(monitor.sent[src] / jobs, 2),
              "in_scripts": round(monitor.scripted[src] / jobs, 2)}
        for src in sorted(set(monitor.sent) | set(monitor.scripted),
                          key=lambda s: -(monitor.sent[s] + monitor.scripted[s]))
    }  # fmt: skip
    return {
        "mode": mode, "env": env, "jobs": jobs, "seconds": round(elapsed, 1),
        "succeeded": sum(1 for s in statuses.values() if s == "succeeded"),
        "sent_per_job": round(sum(monitor.sent.values()) / jobs, 2),
        "in_scripts_per_job": round(sum(monitor.scripted.values()) / jobs, 2),
        "by_source_per_job": per_job,
        "by_command_per_job": {c: round(v / jobs, 2) for c, v in monitor.by_command.most_common()},
        "by_source_command_per_job": {
            k: round(v / jobs, 2) for k, v in sorted(monitor.detail.items())
        },
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.redis_sources",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mode", choices=["poll", "webhook", "stream"], default="webhook")
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the workers")
    parser.add_argument(
        "--trace",
        metavar="FILE",
        help="write every counted command to FILE, in order (grep a job id to see its steps)",
    )
    args = parser.parse_args(argv)
    env = dict(pair.split("=", 1) for pair in args.env)
    trace: list[str] | None = [] if args.trace else None
    result = measure(args.mode, args.jobs, env, trace)
    if args.trace and trace is not None:
        Path(args.trace).write_text("\n".join(trace) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    print("\n| source | sent / job | in scripts / job |\n|---|---:|---:|")
    for src, row in result["by_source_per_job"].items():
        print(f"| {src} | {row['sent']} | {row['in_scripts']} |")
    print(f"| **total** | **{result['sent_per_job']}** | **{result['in_scripts_per_job']}** |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
