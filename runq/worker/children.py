"""The stack's child processes: started in a session of their own, stopped for sure.

Every process the embedded stack starts goes through `spawn`, which asks the kernel to
SIGTERM the child when its parent dies (`die_with_parent`, Linux), and ends through
`stop_process` (SIGTERM, a wait, then SIGKILL). A child that never becomes ready is
stopped by `wait_until` itself, since its caller has no handle on it yet.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from runq.errors import LaunchError

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up once in the parent (never between fork and exec)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent() -> Callable[[], None] | None:
    """A hook for a child between fork and exec: SIGTERM to it when its parent dies.

    The kernel sends it when the thread that forked the child ends; the stack's children
    are started from the main thread, so that is when the parent process ends. A parent
    that died before the hook ran has left the child to another process: it exits at
    once. Everything the hook calls is resolved here, in the parent: a forked child of a
    process with threads must not import or take locks.
    """
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return hook


def spawn(args: Sequence[str], **options: object) -> subprocess.Popen[bytes]:
    """Start a child of the stack: its own session (Ctrl-C is ours to pass on), and it
    dies with us even when we are killed."""
    return subprocess.Popen(  # type: ignore[call-overload]
        list(args),
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent(),
        **options,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: object, what: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    """Wait for `proc` to pass `check`; a child that never does is stopped, not left behind
    (its caller has no handle on it yet to stop it)."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LaunchError(f"{what} exited with code {proc.returncode} while starting")
            if check():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise LaunchError(f"{what} did not become ready within {timeout:.0f}s")
    except BaseException:
        stop_process(proc)
        raise


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL: a child never outlives the stack."""
    stop_processes([proc], timeout)


def stop_processes(procs: Sequence[subprocess.Popen[bytes] | None], timeout: float = 10.0) -> None:
    """`stop_process` for several children at once: each gets its SIGTERM before any is
    waited for, so their warm shutdowns (a second or two for a Celery worker) overlap;
    whichever is still running `timeout` seconds after the signals is killed."""
    running = [proc for proc in procs if proc is not None and proc.poll() is None]
    for proc in running:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in running:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=5)
