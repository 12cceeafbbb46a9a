"""Measurement helpers shared by `bench.run` and `bench.chaos`: processes, Redis, sandbox.

CPU and memory come from `/proc` (Linux), so no extra dependency is needed.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from runq.worker.launcher import SandboxProcess

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- processes ---------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            raw = fh.read()
    except OSError:
        return None
    # The command name may contain spaces: split after its closing parenthesis.
    return raw[raw.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """`pid` and all its live descendants."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields:
            parents.setdefault(int(fields[1]), []).append(int(name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(parents.get(current, []))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (not its children), seconds."""
    fields = _stat_fields(pid)
    if not fields:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE / 2**20
    except (OSError, IndexError):
        return 0.0


@dataclass
class ProcWatch:
    """Samples RSS of process trees every `interval`; keeps each pid's CPU and peak RSS.

    CPU of a process that exits between samples is kept at its last sampled value.
    """

    roots: list[int]
    interval: float = 0.2
    peak_rss: dict[int, float] = field(default_factory=dict)
    cpu_last: dict[int, float] = field(default_factory=dict)
    cpu_base: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        for root in self.roots:
            for pid in descendants(root):
                self.peak_rss[pid] = max(self.peak_rss.get(pid, 0.0), rss_mb(pid))
                cpu = cpu_seconds(pid)
                if cpu:
                    self.cpu_last[pid] = cpu

    def baseline(self) -> None:
        self.sample()
        self.cpu_base = dict(self.cpu_last)
        self.peak_rss = {}
        self.sample()

    def start(self) -> ProcWatch:
        self.baseline()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self.sample()
        self._stop.set()
        if self._thread:
            self._thread.join()

    def cpu_used(self) -> float:
        return sum(self.cpu_of(pid) for pid in self.cpu_last)

    def cpu_of(self, pid: int) -> float:
        """CPU seconds one process used since the baseline."""
        return self.cpu_last.get(pid, 0.0) - self.cpu_base.get(pid, 0.0)

    def max_rss(self, pids: Iterable[int] | None = None) -> float:
        wanted = set(pids) if pids is not None else set(self.peak_rss)
        return max((v for p, v in self.peak_rss.items() if p in wanted), default=0.0)


# -- Redis -------------------------------------------------------------------------------
def redis_counters(client: redis.Redis) -> dict[str, float]:
    """Calls per command and Redis' own CPU seconds."""
    stats = client.info("commandstats")
    out: dict[str, float] = {
        name.removeprefix("cmdstat_"): float(v["calls"]) for name, v in stats.items()
    }
    cpu = client.info("cpu")
    out["__cpu_s"] = float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    return out


def redis_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    keys = set(before) | set(after)
    diff = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in keys}
    return {k: v for k, v in diff.items() if v}


# -- sandbox -----------------------------------------------------------------------------
class ProbeSandbox(SandboxProcess):
    """`SandboxProcess`, served by `bench.sandbox_probe` (the sandbox + `/bench/timelines`)."""

    def start(self, timeout: float = 30.0) -> ProbeSandbox:
        from runq.worker.children import free_port, wait_until

        self.port = self.port or free_port()
        args = [sys.executable, "-m", "bench.sandbox_probe", "--host", "127.0.0.1",
                "--port", str(self.port)]  # fmt: skip
        if self.latency_ms is not None:
            args += ["--latency-ms", str(self.latency_ms)]
        args += list(self.extra_args)
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            env={**os.environ, **self.env}, start_new_session=True,
        )  # fmt: skip
        wait_until(self.ready, "the sandbox", timeout, self.proc)
        return self

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/v1")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.root + path, timeout=60) as resp:
            return json.loads(resp.read())

    def reset(self) -> None:
        req = urllib.request.Request(self.root + "/sandbox/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=30):
            pass

    def stats(self) -> dict[str, Any]:
        return dict(self.get("/sandbox/stats"))

    def timelines(self) -> dict[str, dict[str, Any]]:
        return dict(self.get("/bench/timelines"))


# -- numbers -----------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = 0.0
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 2**20, 1)
    import celery
    import openai

    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "mem_gb": mem_gb,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "celery": celery.__version__,
        "openai": openai.__version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }
