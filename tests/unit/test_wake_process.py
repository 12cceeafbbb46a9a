"""The wake runner's own process (`runq.worker.wake_process`): kept alive, stopped
cleanly, and gone when its worker is killed. Real child processes; the command they
run stands in for the runner, whose own behaviour `test_wakes.py` covers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.concurrency.thread import TaskPool as ThreadsPool

from runq.worker import signals, wake_process
from runq.worker.wake_process import WakeProcess
from tests.conftest import wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux prctl")

# A stand-in child: says it started, and on SIGTERM says it stopped and exits 0.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    log = sys.argv[1]
    def note(what):
        with open(log, "a") as fh:
            fh.write(f"{what} {os.getpid()}\\n")
    def stop(*_):
        note("stopped")
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    note("started")
    while True:
        time.sleep(0.05)
    """
)


def notes(log: Path) -> list[tuple[str, int]]:
    if not log.exists():
        return []
    lines = [line.split() for line in log.read_text().splitlines() if line]
    return [(what, int(pid)) for what, pid in lines]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is not alive
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_stop_sends_sigterm_and_waits_for_the_child(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    keeper = WakeProcess([sys.executable, "-c", CHILD, str(log)]).start()
    started = wait_for(lambda: notes(log), timeout=20, what="the child to start")
    keeper.stop(timeout=10)
    pid = started[0][1]
    assert notes(log) == [("started", pid), ("stopped", pid)]
    assert keeper.pid is None and keeper.starts == 1


def test_a_child_that_dies_is_started_again(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(wake_process, "RESTART_PAUSES", (0.1,))
    log = tmp_path / "child.log"
    keeper = WakeProcess([sys.executable, "-c", CHILD, str(log)]).start()
    try:
        (first,) = wait_for(lambda: notes(log), timeout=20, what="the child to start")
        os.kill(first[1], signal.SIGKILL)
        second = wait_for(lambda: notes(log)[1:], timeout=20, what="the child's restart")
        assert second[0][0] == "started" and second[0][1] != first[1]
        assert keeper.pid == second[0][1]
    finally:
        keeper.stop(timeout=10)
    assert keeper.starts == 2
    assert not alive(first[1]) and not alive(second[0][1])


def test_the_child_stops_when_its_worker_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves the worker no chance to stop its child: the kernel does it (the
    parent-death signal), and the child still stops as on a warm shutdown."""
    log = tmp_path / "child.log"
    worker = textwrap.dedent(
        f"""
        import sys, time
        from runq.worker.wake_process import WakeProcess
        WakeProcess([sys.executable, "-c", {CHILD!r}, {str(log)!r}]).start()
        time.sleep(120)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", worker])
    try:
        (started,) = wait_for(lambda: notes(log), timeout=30, what="the child to start")
        parent.kill()
        parent.wait(timeout=10)
        stopped = wait_for(lambda: notes(log)[1:], timeout=10, what="the child to stop")
        assert stopped == [("stopped", started[1])]
        wait_for(lambda: not alive(started[1]), timeout=10, what="the child to exit")
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_child_that_cannot_start_is_retried_not_spun(tmp_path: Path, monkeypatch) -> None:
    """A child that exits at once (a bad setting, say) is started again after a pause
    that grows, not in a loop that eats a core."""
    monkeypatch.setattr(wake_process, "RESTART_PAUSES", (0.2, 0.4, 60.0))
    log = tmp_path / "child.log"
    script = f"open({str(log)!r}, 'a').write('started 0\\n'); raise SystemExit(3)"
    keeper = WakeProcess([sys.executable, "-c", script]).start()
    try:
        wait_for(lambda: len(notes(log)) >= 3, timeout=30, what="three starts")
        # the third pause is 60 s: no fourth start comes in the next second
        wait_for(lambda: keeper.pid is None, timeout=10, what="the third child to exit")
        count = len(notes(log))
        keeper._stopping.wait(1.0)
        assert len(notes(log)) == count == 3
    finally:
        keeper.stop(timeout=5)


@pytest.mark.parametrize(
    ("setting", "pool", "in_process"),
    [
        ("auto", ThreadsPool, True),
        ("auto", PreforkPool, False),
        ("thread", ThreadsPool, False),
        ("process", PreforkPool, True),
    ],
)
def test_where_the_wake_runner_runs(monkeypatch, setting, pool, in_process) -> None:
    monkeypatch.setenv("RUNQ_WAKE_RUNNER", setting)
    consumer = SimpleNamespace(controller=SimpleNamespace(pool=pool.__new__(pool)))
    assert signals._wake_runner_in_a_child(consumer) is in_process


def test_a_bad_wake_runner_setting_is_named(monkeypatch) -> None:
    from runq.config.settings import get_settings
    from runq.errors import ConfigurationError

    monkeypatch.setenv("RUNQ_WAKE_RUNNER", "fork")
    with pytest.raises(ConfigurationError, match="RUNQ_WAKE_RUNNER"):
        get_settings()
