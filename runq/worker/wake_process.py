"""The wake runner in a process of its own, beside a worker whose pool is threads.

Why a process: a `runs` worker on the threads pool (what `runq worker` gives) runs its
starts, its tool calls, Celery's consumer and the wake runner in one interpreter. Under
a burst that saturates it, the step that ends a job (a poll a webhook woke) waits for
the interpreter lock behind dozens of starts, and its result comes anywhere from 25 ms
to 800 ms after the delivery (docs/benchmarks.md, "The default pool under a burst").
A prefork worker answers in about 8 ms because its wake runner lives in the main
process while the pool processes take the starts: the operating system, not the
interpreter lock, shares the CPU between them. This module gives a threads worker the
same shape: one child interpreter that runs only the woken steps.

The lifecycle follows the worker's:
- the parent starts the child when the worker is ready, from a thread of its own that
  waits on it and starts it again if it dies (with a growing pause, so a child that
  cannot start does not spin);
- the kernel sends the child SIGTERM when that thread, and so the worker, is gone, even
  by SIGKILL (`children.die_with_parent`);
- a SIGTERM (the worker's warm shutdown, or the parent's death) stops the child as the
  in-process runner stops: it takes no more steps and lets the running ones finish.

A step the child was running when it was killed is not lost: its lock lapses and the
job's lease brings it back, as for a worker's crash (docs/reliability.md).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence

import structlog

from runq.worker import children

log = structlog.get_logger("runq.worker")

RESTART_PAUSES = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds before each restart of a child that exited on its own; the last repeats. A
child that ran for `STEADY_SECONDS` starts again after the first pause."""
STEADY_SECONDS = 60.0
STOP_SECONDS = 30.0
"""How long a stop lets the child's running steps finish, as `WakeRunner.stop` does."""


class WakeProcess:
    """Keeps one wake runner child alive beside this worker, until `stop`."""

    def __init__(
        self, command: Sequence[str] | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self.command = list(command) if command is not None else child_command()
        self.env = {**os.environ, **env} if env else None  # None: this process's own
        self._stopping = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._keeper: threading.Thread | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        child = self._child
        return child.pid if child is not None and child.poll() is None else None

    def start(self) -> WakeProcess:
        # The thread that starts the child must live as long as it: the kernel's
        # parent-death signal follows the thread that forked, not the process.
        self._keeper = threading.Thread(target=self._keep, name="runq-wake-process",
                                        daemon=True)  # fmt: skip
        self._keeper.start()
        return self

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """SIGTERM the child, wait up to `timeout` for its running steps, then SIGKILL."""
        self._stopping.set()
        with self._lock:
            child = self._child
        if child is not None:
            children.stop_process(child, timeout)
        if self._keeper is not None:
            self._keeper.join(5.0)

    def _keep(self) -> None:
        structlog.contextvars.bind_contextvars(process="worker")
        failures = 0
        while not self._stopping.is_set():
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    self._child = children.spawn(self.command, env=self.env)
                except OSError:
                    log.exception("wake.process_start_failed")
                    self._child = None
            child = self._child
            if child is not None:
                self.starts += 1
                log.info("wake.process_started", pid=child.pid)
                started = time.monotonic()
                code = child.wait()
                if self._stopping.is_set():
                    return
                if time.monotonic() - started >= STEADY_SECONDS:
                    failures = 0
                log.error("wake.process_exited", pid=child.pid, code=code)
            pause = RESTART_PAUSES[min(failures, len(RESTART_PAUSES) - 1)]
            failures += 1
            self._stopping.wait(pause)


def child_command() -> list[str]:
    """This interpreter, running `main` below for this process."""
    return [sys.executable, "-m", "runq.worker.wake_process", "--parent", str(os.getpid())]


def main(argv: Sequence[str] | None = None) -> int:
    """The child: the worker's runtime and tools, a wake runner, and nothing else."""
    parser = argparse.ArgumentParser(prog="runq.worker.wake_process")
    parser.add_argument("--parent", type=int, required=True, help="the worker's pid")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    from runq.config.logging import configure_logging
    from runq.config.settings import get_settings
    from runq.runs.metrics_buffer import flush_all
    from runq.runs.tools import load_tool_modules
    from runq.worker.celery_app import app
    from runq.worker.wake_runner import WakeRunner

    settings = get_settings()
    configure_logging(settings, process="worker")
    load_tool_modules(settings.tool_modules)  # a poll dispatches tool calls to their queues
    runtime = app.runtime
    runner = WakeRunner(runtime.wakes, runtime.steps.run, threads=settings.wake_threads)
    runner.start()
    log.info("wake.runner_started", threads=runner.threads, parent=args.parent)
    # The kernel's signal covers Linux; elsewhere a lost parent shows as a new parent id.
    while not stop.wait(1.0):
        if os.getppid() != args.parent:
            log.warning("wake.parent_gone", parent=args.parent)
            break
    runner.stop(STOP_SECONDS)
    flush_all()
    log.info("wake.runner_stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
