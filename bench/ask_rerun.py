"""`runq ask` run twice: how much of the first run's time does the re-run cost?

For each backend latency, a fresh stack like `runq up`'s (embedded Redis, the sandbox,
one worker with `--concurrency 2`) answers the sample corpus's questions with the real
`runq` command, then the same command runs again, several times. Reported per latency:
the first run's wall time, the re-run's median wall time, their ratio, and the same
ratio by the command's own clock (`elapsed_s`: from parsing the arguments' documents to
having every answer, interpreter start-up excluded).

The command runs in a pseudo-terminal 160 columns wide, so it draws its live progress
bar and its table as it does for a user at a terminal.

The re-run's wall time has a floor: starting Python and importing what it needs (runq's
modules and rich; not redis-py, see `runq.producers.client._resp`). The run measures that floor
too, and what importing redis-py would add to it, so the table shows what is left.

    python -m bench.ask_rerun          # 200, 300 and 2000 ms; 200 ms with 100 ms per request
    python -m bench.ask_rerun --latency-ms 300 --request-latency-ms 50 --reruns 3
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path
from typing import Any

from bench.common import machine_info
from bench.report import replace_section
from runq.worker.launcher import EmbeddedRedis, SandboxProcess, WorkerProcess

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "examples" / "docs"
QUESTIONS = ROOT / "examples" / "questions.txt"
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- ask-rerun:begin -->", "<!-- ask-rerun:end -->"
COLUMNS = (
    "sandbox latency", "per request", "first run", "re-run", "re-run / first", "first (own clock)",
    "re-run (own clock)", "ratio (own clock)", "re-run uploads", "re-run submits",
)  # fmt: skip
HEADER = "| " + " | ".join(COLUMNS) + " |\n" + "|---" * len(COLUMNS) + "|"


def runq_command() -> list[str]:
    """The installed `runq` script beside this interpreter (what a user types)."""
    script = Path(sys.executable).with_name("runq")
    if script.exists():
        return [str(script)]
    found = shutil.which("runq")
    return [found] if found else [sys.executable, "-m", "runq.producers.cli"]


ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
TERMINAL_SIZE = (50, 160)  # rows, columns


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str, int]:
    """Wall time, output (escape codes removed) and exit code of `cmd` run in a terminal."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", *TERMINAL_SIZE, 0, 0))
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower)  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: every holder of the terminal has closed it
            break
        if not chunk:
            break
        chunks.append(chunk)
    code = proc.wait(timeout=600)
    elapsed = time.perf_counter() - started
    os.close(leader)
    output = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r", "\n")
    return elapsed, output, code


def counters(stderr: str) -> dict[str, str]:
    line = next((ln for ln in stderr.splitlines() if ln.startswith("runq ask: ")), None)
    if line is None:
        raise RuntimeError(f"runq ask printed no summary:\n{stderr[-2000:]}")
    return dict(part.split("=", 1) for part in line[len("runq ask: ") :].split())


FLOOR_IMPORTS = (
    "runq.producers.ask.batch, runq.producers.ask.output, runq.producers.client._resp, rich.console"
)


def import_floor(also: str = "", samples: int = 5) -> float:
    """Best wall time of an interpreter that only imports what every re-run needs."""
    cmd = [sys.executable, "-c", f"import {FLOOR_IMPORTS}{also}"]
    return min(timed(cmd, dict(os.environ), ROOT)[0] for _ in range(samples))


# (sandbox latency, delay on every API request) in ms: the sandbox as `runq up` and
# `make demo` run it, a slow model, and a network between the command and the backend.
SCENARIOS = ((200, 0), (300, 0), (2000, 0), (200, 100))


def one_latency(latency_ms: int, request_ms: int, reruns: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="runq-ask-bench-"))
    redis_server = EmbeddedRedis(home).start()
    sandbox = SandboxProcess(
        latency_ms=latency_ms, env={"RUNQ_SANDBOX_REQUEST_LATENCY_MS": str(request_ms)}
    ).start()
    worker = WorkerProcess(
        redis_server.url,
        sandbox.base_url,
        concurrency=2,
        env={"RUNQ_HOME": str(home)},
        log_path=home / "worker.log",
    ).start()
    env = {**os.environ, "REDIS_URL": redis_server.url, "OPENAI_BASE_URL": sandbox.base_url,
           "RUNQ_HOME": str(home), "TERM": "xterm-256color"}  # fmt: skip
    for sized_by_hand in ("COLUMNS", "LINES"):  # the terminal's own size decides
        env.pop(sized_by_hand, None)
    cmd = [*runq_command(), "ask", str(DOCS), "--questions", str(QUESTIONS),
           "--out", str(home / "results.jsonl")]  # fmt: skip
    try:
        first_s, first_err, code = timed(cmd, env, home)
        if code != 0:
            raise RuntimeError(f"first run exited {code}:\n{first_err[-2000:]}")
        first = counters(first_err)
        again = [timed(cmd, env, home) for _ in range(reruns)]
    finally:
        worker.stop()
        sandbox.stop()
        redis_server.stop()
    re_counters = [counters(err) for _, err, _ in again]
    re_wall = statistics.median(s for s, _, _ in again)
    re_own = statistics.median(float(c["elapsed_s"]) for c in re_counters)
    first_own = float(first["elapsed_s"])
    return {
        "latency_ms": latency_ms,
        "request_latency_ms": request_ms,
        "first_wall_s": round(first_s, 3),
        "first_own_s": first_own,
        "rerun_wall_s": round(re_wall, 3),
        "rerun_own_s": re_own,
        "ratio_wall_pct": round(100 * re_wall / first_s, 1),
        "ratio_own_pct": round(100 * re_own / first_own, 2),
        "rerun_uploaded": sorted({c["uploaded"] for c in re_counters}),
        "rerun_submitted": sorted({c["submitted"] for c in re_counters}),
        "rerun_reused_results": sorted({c["reused_results"] for c in re_counters}),
    }


def write_doc(result: dict[str, Any]) -> None:
    rows = "\n".join(
        f"| {r['latency_ms']} ms | {r.get('request_latency_ms', 0)} ms | "
        f"{r['first_wall_s']:.2f} s | {r['rerun_wall_s']:.2f} s | "
        f"**{r['ratio_wall_pct']} %** | {r['first_own_s']:.3f} s | {r['rerun_own_s']:.3f} s | "
        f"{r['ratio_own_pct']} % | {'/'.join(r['rerun_uploaded'])} | "
        f"{'/'.join(r['rerun_submitted'])} |"
        for r in result["runs"]
    )
    missed = [r for r in result["runs"] if r["ratio_wall_pct"] >= 10]
    verdict = (
        "Every latency meets the target in wall time."
        if not missed
        else "Wall time misses the target at "
        + ", ".join(
            f"{r['latency_ms']} ms ({r.get('request_latency_ms', 0)} ms per request)"
            for r in missed
        )
        + ": there the sandbox answers far faster than a real backend, so the first run is"
        " short next to the interpreter's start-up."
    )
    section = f"""{BEGIN}
## `runq ask` re-run (target: under 10 % of the first run)

`{result["command"]}` — the sample corpus (6 documents, 10 questions) with the real
`runq ask` command, in a 160-column pseudo-terminal as a user runs it, against a fresh
stack like `runq up`'s (one worker, concurrency 2); the re-run is the median of
{result["reruns"]} runs. "Own clock" is the command's `elapsed_s` (documents read to answers in
hand); wall time adds the interpreter's start-up. "Per request" is the sandbox's delay
on every API request (`--request-latency-ms`), standing for the network to a real
backend. {verdict}

{HEADER}
{rows}

Floor of any re-run on this machine: {result["import_floor_s"]:.2f} s, the best of 5
interpreters that only import what every re-run needs:

    python -c "import {FLOOR_IMPORTS}"

A re-run whose every answer exists reads Redis only — no upload check, no vector store
call, no Celery, `openai` or redis-py import (its four reads go over
`runq.producers.client._resp`) — so its wall time is that floor plus reading the documents,
two MGETs and two GETs, writing the results and drawing the table. Importing redis-py as
well would raise the floor to {result["import_floor_redis_s"]:.2f} s. Raw JSON:
`bench/results/ask-rerun.json`.
{END}"""
    replace_section(DOC, BEGIN, END, section, "Benchmarks")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=int, action="append",
                        help="sandbox latency (repeat; default: the scenarios above)")  # fmt: skip
    parser.add_argument("--request-latency-ms", type=int, default=0,
                        help="delay on every API request, with --latency-ms")  # fmt: skip
    parser.add_argument("--reruns", type=int, default=5)
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/")
    args = parser.parse_args(argv)
    scenarios = (
        [(ms, args.request_latency_ms) for ms in args.latency_ms]
        if args.latency_ms
        else list(SCENARIOS)
    )
    result = {
        "command": " ".join(["python -m bench.ask_rerun", *(argv or sys.argv[1:])]),
        "machine": machine_info(),
        "reruns": args.reruns,
        "import_floor_s": round(import_floor(), 3),
        "import_floor_redis_s": round(import_floor(", redis"), 3),
        "runs": [one_latency(ms, request_ms, args.reruns) for ms, request_ms in scenarios],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ask-rerun.json").write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_doc:
        write_doc(result)
    print(json.dumps(result["runs"], indent=2))
    print(f"import floor {result['import_floor_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
