"""`python -m bench.chaos`: runq under backend faults, SIGKILLed workers and a Redis restart.

N jobs (500; `--quick`: 40), each with one scripted round of the non-idempotent example
tool `append_note` (one line per call in `<RUNQ_HOME>/notes.txt`, the note being the job
id), against the sandbox with a fault profile. While they run, worker processes are
killed with SIGKILL at random intervals (`--kills`, 20): even kills take down a whole
worker (Celery main process and pool, its process group) and start a new one; odd kills
hit one pool process, which Celery replaces. Once, half-way, Redis (AOF on,
`appendfsync everysec`) is stopped and started again on the same port.

Counted at the end:

- lost: submitted jobs that are not terminal when the run ends (or have no record);
- duplicate runs: jobs for which the sandbox created more than one response for the same
  `(runq_attempt, runq_round)` (metadata runq sends with every create). A retry bumps the
  attempt, so retried runs are not duplicates; a second create of the same step is;
- duplicate tool executions: lines in `notes.txt` beyond one per job;
- published and settled: every ended job's result in the record and the result backend,
  and none left on the sweeper's watch or holding a place in flight (the harness waits
  for that, so a kill between a job's end and the rest of its publication shows as the
  time it took, `publish_wait_after_last_end_s`);
- time to recover: for each fault (kill or Redis restart), the time until the next job
  reached a terminal state; and the time from the last fault to the last job's end.

`--mode webhook` runs the same jobs in webhook mode: the sandbox signs and sends a
webhook when each response ends, `runq webhooks` receives it and wakes the job, and the
safety poll (`--safety-poll`, 15 s) is all that covers a lost one. On top of the faults
above, the sandbox drops, delays and duplicates deliveries (`--webhook-faults`), and the
receiver itself is SIGKILLed and started again on the same port twice (the sandbox
retries the deliveries it could not make). A woken poll runs in the worker's main
process, so a whole-worker kill also takes the polls its wake runner had popped.

`--mode stream` runs them in stream mode: a step follows its run's event stream and
forwards the text deltas, and a stream cut by a kill resumes after the last delta it
forwarded. The report counts deltas forwarded twice within a run and succeeded jobs
whose last run's deltas do not add up to their answer.

    python -m bench.chaos [--jobs 500] [--faults SPEC] [--seed 7] [--kills 20] [--quick]
    python -m bench.chaos --mode webhook [--webhook-faults SPEC] [--safety-poll 15]
    python -m bench.chaos --mode stream
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import ProbeSandbox, descendants, machine_info, percentile
from bench.run import BenchWebhooks
from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.runs import keys
from runq.worker.launcher import EmbeddedRedis, WorkerProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FAULTS = "429=0.1,500=0.05,hang=0.02,failed=0.02,expired=0.01"
# What the harness prints when it ends (the JSON has everything).
SUMMARY = (
    "submitted", "succeeded", "failed", "lost", "duplicate_run_jobs",
    "duplicate_tool_executions", "tool_calls_interrupted", "recover_s_max",
    "drain_after_last_fault_s", "published", "in_result_backend", "leased_after_the_end",
    "in_flight_after_the_end", "publish_wait_after_last_end_s", "run_ends_taken_by",
    "webhooks", "stream_deltas", "stream_deltas_repeated", "stream_runs_followed_again",
    "stream_answers_not_as_streamed", "workers_exited_on_their_own",
)  # fmt: skip
DEFAULT_WEBHOOK_FAULTS = "webhook_drop=0.1,webhook_delay=0.1,webhook_duplicate=0.1"
TERMINAL = {"succeeded", "failed", "cancelled"}


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Fleet:
    """`count` runq workers that can be SIGKILLed and replaced."""

    def __init__(
        self, url: str, base_url: str, home: Path, count: int, env: dict[str, str],
        newcomer: bool = False,
    ):  # fmt: skip
        self.url, self.base_url, self.home, self.env = url, base_url, home, env
        # Prefork with two processes each, or (newcomer) the shape `runq worker` picks.
        self.shape: dict[str, Any] = {} if newcomer else {"concurrency": 2, "pool": "prefork"}
        self.workers: list[WorkerProcess | None] = [None] * count
        self.started = 0
        # Workers that exited without being killed: (time, index, exit code). Each is
        # started again, as a supervisor (compose's restart policy) would, and reported.
        self.exits: list[tuple[float, int, int]] = []
        for i in range(count):
            self.start(i)

    def start(self, index: int) -> None:
        self.started += 1
        self.workers[index] = WorkerProcess(
            self.url, self.base_url, queues="runs,tools", **self.shape,
            name=f"chaos{index}-{self.started}-{os.getpid()}@%h", env=self.env,
            log_path=self.home / "worker.log",
        ).start()  # fmt: skip

    def kill_worker(self, index: int) -> None:
        proc = self.workers[index]
        if proc is not None and proc.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.proc.pid, signal.SIGKILL)
            proc.proc.wait(timeout=10)
        self.workers[index] = None

    def kill_pool_process(self, index: int) -> bool:
        proc = self.workers[index]
        if proc is None or proc.proc is None:
            return False
        children = [p for p in descendants(proc.proc.pid) if p != proc.proc.pid]
        if not children:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(random.choice(children), signal.SIGKILL)
        return True

    def replace_exited(self) -> None:
        """Start again every worker that exited on its own, and note it."""
        for index, proc in enumerate(self.workers):
            code = proc.proc.poll() if proc is not None and proc.proc is not None else None
            if code is not None:
                self.exits.append((time.time(), index, code))
                log(f"worker {index} exited on its own (code {code}); starting it again")
                self.start(index)

    def stop(self) -> None:
        for proc in self.workers:
            if proc is not None:
                proc.stop()


def job_states(client: Client, ids: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for job_id in ids:
        try:
            out[job_id] = client.store.get(job_id)
        except Exception:  # missing record, or Redis is restarting
            out[job_id] = None
    return out


def unsettled(client: Client, ids: list[str]) -> dict[str, int]:
    """Of these jobs, how many still hold a lease (the sweeper's watch, which an ended job
    keeps until its publication is done) and a place in flight at fair admission."""
    leases = client.redis.zmscore(keys.leases(), ids)
    running = client.redis.hmget(keys.fair("running"), ids)
    return {
        "leased": sum(score is not None for score in leases),
        "in_flight": sum(lane is not None for lane in running),
    }


def kill_receiver(hooks: BenchWebhooks) -> None:
    """SIGKILL `runq webhooks`: deliveries in its hands are lost, later ones refused until
    it is back (the sandbox retries those with backoff)."""
    proc = hooks.proc.proc if hooks.proc is not None else None
    if proc is not None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)
    hooks.proc = None


def worker_log(home: Path) -> list[dict[str, Any]]:
    """The workers' JSON log lines (every worker writes `home/worker.log`), read once for
    the report's figures; lines that are not JSON (a banner) are left out."""
    log_file = home / "worker.log"
    records = []
    for line in log_file.read_text(errors="replace").splitlines() if log_file.exists() else []:
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                records.append(record)
    return records


def interrupted_calls(records: list[dict[str, Any]]) -> int:
    """Tool calls reported `tool_interrupted` in the workers' log."""
    return sum(1 for r in records if r.get("event") == "tool.failed"
               and r.get("code") == "tool_interrupted")  # fmt: skip


def stream_figures(
    client: Client, states: dict[str, Any], records: list[dict[str, Any]]
) -> dict[str, Any]:
    """Whether streams resumed after a kill repeated or skipped text, from each job's event
    stream. A run's `text.delta` events carry its sequence numbers, which only grow; any
    other event (a new run, a retry, a tool round) starts the next run's deltas. A delta
    whose number does not grow within a run was forwarded twice; a succeeded job whose
    last run's deltas do not add up to its answer lost or repeated some."""
    repeated = forwarded = 0
    mismatched: list[str] = []
    for job_id, job in states.items():
        if job is None:
            continue
        runs: list[list[str]] = [[]]
        last = None
        for _id, fields in client.redis.xrange(keys.events(job_id)):
            event = json.loads(fields[b"data"])
            if event.get("type") != "text.delta":
                if runs[-1]:
                    runs.append([])
                last = None
                continue
            if last is not None and event["seq"] <= last:
                repeated += 1
            last = event["seq"]
            runs[-1].append(event["delta"])
            forwarded += 1
        finals = [deltas for deltas in runs if deltas]
        if job.status == "succeeded" and finals and "".join(finals[-1]) != job.output_text:
            mismatched.append(job_id)
    return {"stream_deltas": forwarded, "stream_deltas_repeated": repeated,
            "stream_answers_not_as_streamed": mismatched,
            "stream_runs_followed_again": runs_followed_again(records)}  # fmt: skip


def runs_followed_again(records: list[dict[str, Any]]) -> int:
    """Runs whose stream more than one `runq.jobs.stream` task followed (a kill, a lost
    lock, a failed call): each later one resumed after the last delta forwarded."""
    followers: dict[tuple[str, str], set[str]] = {}
    for record in records:
        if record.get("task_name") == "runq.jobs.stream" and record.get("run_id"):
            run = (record.get("job_id", ""), record["run_id"])
            followers.setdefault(run, set()).add(record.get("task_id", ""))
    return sum(1 for tasks in followers.values() if len(tasks) > 1)


def webhook_figures(
    records: list[dict[str, Any]], stats: dict[str, Any], safety: float
) -> dict[str, Any]:
    """What the deliveries did (the sandbox's counts) and what moved each job on once its
    run ended, read from the workers' log: a step that dispatched a round's tools or
    finished the job, by the task that ran it. `runq.wake.poll` is a poll a delivery woke
    (or one due now); `runq.wake.look` (or `runq.jobs.look`, a look due within 5 s,
    sent as a Celery countdown) a safety look that found the run ended, so its delivery
    was lost, late or refused; `runq.jobs.poll` a poll task (after a failed call, or the
    sweeper's re-drive)."""
    moved = Counter(
        r.get("task_name") or "?" for r in records
        if r.get("event") in ("job.tools_dispatched", "job.finished")
    )  # fmt: skip
    return {"safety_poll_s": safety, "webhooks": stats.get("webhooks"),
            "run_ends_taken_by": dict(moved)}  # fmt: skip


def start_sandbox(
    args: argparse.Namespace, faults: str, hooks: BenchWebhooks | None, redis_url: str, home: Path
) -> ProbeSandbox:
    """The sandbox with the fault profile; in webhook mode it sends to a started receiver."""
    extra = ["--faults", faults, "--seed", str(args.seed)]
    env = {"RUNQ_SANDBOX_HANG_SECONDS": "60"}
    if hooks is not None:
        extra += ["--webhook-url", hooks.url]
        env["RUNQ_SANDBOX_WEBHOOK_SECRET"] = hooks.secret
        hooks.start(redis_url, home)
    return ProbeSandbox(latency_ms=args.latency_ms, extra_args=extra, env=env).start()


def inject_faults(
    fleet: Fleet,
    server: EmbeddedRedis,
    hooks: BenchWebhooks | None,
    home: Path,
    *,
    kills: int,
    workers: int,
    rng: random.Random,
    faults: list[tuple[float, str]],
) -> EmbeddedRedis:
    """`kills` SIGKILLs at random intervals (even: a whole worker, replaced; odd: one pool
    process), Redis restarted half-way, and with `hooks` the receiver killed and started
    again at a quarter and three quarters. Returns the Redis server now running."""
    port = server.port
    receiver_kills = {kills // 4, (3 * kills) // 4} if hooks is not None else set()
    for k in range(kills):
        time.sleep(rng.uniform(0.5, 3.0))
        fleet.replace_exited()
        index = rng.randrange(workers)
        if k % 2 == 0:
            fleet.kill_worker(index)
            faults.append((time.time(), f"SIGKILL worker {index} (whole process group)"))
            time.sleep(rng.uniform(0.2, 1.5))
            fleet.start(index)
        elif fleet.kill_pool_process(index):
            faults.append((time.time(), f"SIGKILL one pool process of worker {index}"))
        if hooks is not None and k in receiver_kills:
            kill_receiver(hooks)
            faults.append((time.time(), "SIGKILL the webhook receiver"))
            time.sleep(1.0)
            hooks.start(server.url, home)
            faults.append((time.time(), "webhook receiver started (same port)"))
        if k == kills // 2:
            server.stop()
            faults.append((time.time(), "Redis stopped"))
            time.sleep(1.0)
            server = EmbeddedRedis(home, port=port, appendonly=True).start()
            faults.append((time.time(), "Redis started (same port, AOF)"))
            log("Redis restarted")
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--jobs", type=int)
    parser.add_argument("--faults", default=DEFAULT_FAULTS)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--kills", type=int)
    parser.add_argument("--latency-ms", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2, help="celery workers (concurrency 2)")
    parser.add_argument(
        "--request-timeout", type=float, default=5.0,
        help="RUNQ_REQUEST_TIMEOUT for workers (a hang costs this long)",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this long")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--mode", choices=["poll", "stream", "webhook"], default="poll")
    parser.add_argument(
        "--newcomer", action="store_true",
        help="start each worker as `runq worker` does (a threads pool), not prefork x 2; "
        "then the odd kills hit the worker's wake runner process, which it starts again",
    )  # fmt: skip
    parser.add_argument(
        "--webhook-faults", default=DEFAULT_WEBHOOK_FAULTS,
        help="webhook mode: the sandbox's delivery faults, added to --faults",
    )  # fmt: skip
    parser.add_argument(
        "--safety-poll", type=float, default=15.0,
        help="webhook mode: RUNQ_SAFETY_POLL_INTERVAL, what finishes a job whose webhook is lost",
    )  # fmt: skip
    parser.add_argument("--out", help="JSON (default bench/results/chaos[-MODE][-quick].json)")
    args = parser.parse_args(argv)
    n = args.jobs or (40 if args.quick else 500)
    kills = args.kills if args.kills is not None else (4 if args.quick else 20)
    webhooks = args.mode == "webhook"
    mode_part = "" if args.mode == "poll" else f"-{args.mode}"
    name = "chaos" + mode_part + ("-quick" if args.quick else "") + ".json"
    faults_profile = f"{args.faults},{args.webhook_faults}" if webhooks else args.faults
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / name
    rng = random.Random(args.seed)
    random.seed(args.seed)
    home = Path(tempfile.mkdtemp(prefix="runq-chaos-"))
    port = free_port()
    server = EmbeddedRedis(home, port=port, appendonly=True).start()
    hooks = BenchWebhooks() if webhooks else None
    sandbox = start_sandbox(args, faults_profile, hooks, server.url, home)
    env = {"RUNQ_HOME": str(home), "RUNQ_LOG_FORMAT": "json", "RUNQ_SWEEP_INTERVAL": "5",
           "RUNQ_TOOL_MODULES": "examples.tools", "RUNQ_MODE": args.mode,
           "RUNQ_REQUEST_TIMEOUT": str(args.request_timeout)}  # fmt: skip
    if webhooks:
        env["RUNQ_SAFETY_POLL_INTERVAL"] = str(args.safety_poll)
    fleet = Fleet(server.url, sandbox.base_url, home, args.workers, env, args.newcomer)
    client = Client(server.url, load_settings(redis_url=server.url, home=home))
    faults: list[tuple[float, str]] = []
    try:
        ids = [f"chaos-{i:05d}" for i in range(n)]
        t0 = time.time()
        for job_id in ids:
            script = json.dumps([[{"name": "append_note", "arguments": {"note": job_id}}]])
            client.submit("Save a note", job_id=job_id, tools=["append_note"], mode=args.mode,
                          metadata={"sandbox_script": script})  # fmt: skip
        log(f"submitted {n} jobs; faults {faults_profile} seed {args.seed}")
        server = inject_faults(
            fleet, server, hooks, home, kills=kills, workers=args.workers, rng=rng, faults=faults
        )
        log(f"{len(faults)} faults injected; waiting for every job to end")
        deadline = time.time() + args.timeout
        states: dict[str, Any] = {}
        while time.time() < deadline:
            states = job_states(client, ids)
            done = sum(1 for j in states.values() if j is not None and j.status in TERMINAL)
            if done == n:
                break
            fleet.replace_exited()
            time.sleep(2.0)
        ended = time.time()
        # Then every ended job must also be published and settled: its result out, its
        # place in flight given back, its lease dropped. What a kill interrupted there is
        # done by `runq.jobs.finish`, which the sweeper sends once the job's lease runs out.
        left = {"leased": n, "in_flight": n}
        while time.time() < deadline:
            states = job_states(client, ids)
            left = unsettled(client, ids)
            published = all(j is not None and j.published for j in states.values())
            if published and not any(left.values()):
                break
            time.sleep(2.0)
        published_at = time.time()
        states = job_states(client, ids)
        in_result_backend = sum(
            bool(client.redis.exists(f"celery-task-meta-{job_id}")) for job_id in ids
        )
        records = worker_log(home)
        streamed = stream_figures(client, states, records) if args.mode == "stream" else {}
        rows = sandbox.get("/bench/responses")
        stats = sandbox.stats()
    finally:
        fleet.stop()
        sandbox.stop()
        if hooks is not None:
            hooks.stop()
        server.stop()

    status = Counter((j.status if j is not None else "missing") for j in states.values())
    terminal = sum(v for k, v in status.items() if k in TERMINAL)
    lost = n - terminal
    per_step = Counter((r["job"], r["attempt"], r["round"]) for r in rows if r["job"] in states)
    dup_jobs = sorted({job for (job, _, _), c in per_step.items() if c > 1})
    retried_runs = sum(1 for j in states.values() if j is not None and j.attempt > 0)
    notes_file = home / "notes.txt"
    lines = notes_file.read_text().splitlines() if notes_file.exists() else []
    per_note = Counter(line.split("\t", 1)[-1] for line in lines if line)
    dup_tools = sum(c - 1 for c in per_note.values() if c > 1)
    finish_times = sorted(j.timings.get("finished_at", 0.0) for j in states.values()
                          if j is not None and j.status in TERMINAL)  # fmt: skip
    recover = []
    for at, _what in faults:
        after = [t for t in finish_times if t > at]
        if after:
            recover.append(after[0] - at)
    last_fault = max((at for at, _ in faults), default=t0)
    last_end = finish_times[-1] if finish_times else ended
    failed_codes = Counter((j.error or {}).get("code") for j in states.values()
                           if j is not None and j.status == "failed")  # fmt: skip
    report = {
        "command": "python -m bench.chaos " + " ".join(argv if argv is not None else sys.argv[1:]),
        "jobs": n,
        "mode": args.mode,
        "faults_profile": faults_profile,
        "seed": args.seed,
        "latency_ms": args.latency_ms,
        "workers": f"{args.workers} celery workers x "
        + ("the default shape (runq worker)" if args.newcomer else "2 prefork"),
        "request_timeout_s": args.request_timeout,
        "submitted": n,
        "succeeded": status.get("succeeded", 0),
        "failed": status.get("failed", 0),
        "cancelled": status.get("cancelled", 0),
        "lost": lost,
        "non_terminal_by_status": {k: v for k, v in status.items() if k not in TERMINAL},
        "failed_by_code": dict(failed_codes),
        "terminal_pct": round(100.0 * terminal / n, 2),
        "succeeded_pct": round(100.0 * status.get("succeeded", 0) / n, 2),
        "jobs_with_retried_runs": retried_runs,
        "duplicate_run_jobs": len(dup_jobs),
        "duplicate_runs_pct": round(100.0 * len(dup_jobs) / n, 2),
        "duplicate_run_examples": dup_jobs[:10],
        "responses_created": len(rows),
        "tool_executions": len(lines),
        "jobs_with_a_note": len(per_note),
        "duplicate_tool_executions": dup_tools,
        # A call whose worker died after it was marked started: not run again (the tool
        # is not idempotent), and the model is told (`tool_interrupted`).
        "tool_calls_interrupted": interrupted_calls(records),
        "published": sum(1 for j in states.values() if j is not None and j.published),
        "in_result_backend": in_result_backend,
        # Ended jobs still on the sweeper's watch, or holding a place in flight: 0 and 0
        # unless the harness timed out before their publication was done.
        "leased_after_the_end": left["leased"],
        "in_flight_after_the_end": left["in_flight"],
        "publish_wait_after_last_end_s": round(published_at - ended, 2),
        "faults": [{"at_s": round(at - t0, 2), "what": what} for at, what in faults],
        "workers_exited_on_their_own": [
            {"at_s": round(at - t0, 2), "worker": index, "exit_code": code}
            for at, index, code in fleet.exits
        ],
        "sandbox_faults": stats.get("faults"),
        **(webhook_figures(records, stats, args.safety_poll) if webhooks else {}),
        **streamed,
        "recover_s_median": round(percentile(recover, 50), 2) if recover else None,
        "recover_s_max": round(max(recover), 2) if recover else None,
        "drain_after_last_fault_s": round(last_end - last_fault, 2),
        "total_s": round(ended - t0, 2),
        "machine": machine_info(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    log(json.dumps({k: report[k] for k in SUMMARY if k in report}))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
