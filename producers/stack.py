"""`runq up`: the embedded stack in the foreground until Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading

from config.settings import get_settings
from worker.launcher import Stack, write_state


def run_up(*, workers: int = 1, concurrency: int = 2) -> int:
    settings = get_settings()
    stack = Stack(
        home=settings.home,
        redis_url=settings.redis_url,
        base_url=settings.openai_base_url,
        workers=workers,
        concurrency=concurrency,
    )
    stopping = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with stack:
        write_state(settings.home, redis_url=stack.redis_url, base_url=stack.base_url)
        print(f"runq up: redis   {stack.redis_url}", flush=True)
        print(f"runq up: backend {stack.base_url}", flush=True)
        print(f"runq up: {workers} worker(s), concurrency {concurrency}; pid {os.getpid()}")
        print('runq up: from another terminal in this folder: runq submit "hello" --wait')
        print("runq up: Ctrl-C stops everything", flush=True)
        while not stopping.wait(0.5):
            for proc in stack.worker_procs:
                if proc.proc is not None and proc.proc.poll() is not None:
                    print(f"runq up: a worker exited with code {proc.proc.returncode}; stopping")
                    stopping.set()
    print("runq up: stopped", flush=True)
    return 0
