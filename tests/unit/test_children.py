"""Stopping the stack's children (worker.children): all at once, and none left running."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from runq.worker.children import spawn, stop_processes

# On SIGTERM, a child marks it in a file, then exits only once its sibling has been
# signalled too: stopped one after the other, the first would wait for ever.
WAITS_FOR_ITS_SIBLING = """
import pathlib, signal, sys, time
me, sibling = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
def on_term(*_):
    me.touch()
    while not sibling.exists():
        time.sleep(0.01)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
pathlib.Path(sys.argv[1] + ".ready").touch()
while True:
    time.sleep(0.1)
"""

IGNORES_SIGTERM = """
import pathlib, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path(sys.argv[1] + ".ready").touch()
while True:
    time.sleep(0.1)
"""


def _start(code: str, *args: Path) -> subprocess.Popen[bytes]:
    proc = spawn([sys.executable, "-c", code, *map(str, args)])
    ready = Path(f"{args[0]}.ready")
    for _ in range(1000):
        if ready.exists():
            return proc
        assert proc.poll() is None, "the child exited while starting"
        time.sleep(0.01)
    raise AssertionError("the child never became ready")


def test_every_child_is_signalled_before_any_is_waited_for(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    procs = [_start(WAITS_FOR_ITS_SIBLING, a, b), _start(WAITS_FOR_ITS_SIBLING, b, a)]
    stop_processes(procs, timeout=10)
    assert [proc.returncode for proc in procs] == [0, 0]  # both ended on their own


def test_a_child_that_ignores_the_signal_is_killed_and_none_is_left(tmp_path: Path) -> None:
    stubborn = _start(IGNORES_SIGTERM, tmp_path / "stubborn")
    a, b = tmp_path / "a", tmp_path / "b"
    polite = [_start(WAITS_FOR_ITS_SIBLING, a, b), _start(WAITS_FOR_ITS_SIBLING, b, a)]
    stop_processes([stubborn, None, *polite], timeout=1)
    assert stubborn.returncode == -9
    assert [proc.returncode for proc in polite] == [0, 0]
    stop_processes([stubborn], timeout=1)  # stopping a stopped child is harmless
