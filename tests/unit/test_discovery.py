"""How commands find the stack `runq up` started from their folder, and `runq up` twice."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runq.config.settings import get_settings
from runq.producers import cli
from runq.worker.discovery import STATE_FILE, clear_state, read_state, write_state


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("RUNQ_HOME", str(tmp_path / ".runq"))
    monkeypatch.delenv("REDIS_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path / ".runq"
    get_settings.cache_clear()


def test_a_live_stack_is_found_and_a_dead_one_is_not(home: Path) -> None:
    write_state(home, redis_url="redis://127.0.0.1:7000/0", base_url="http://x/v1")
    assert read_state(home)["redis_url"] == "redis://127.0.0.1:7000/0"
    dead = json.loads((home / STATE_FILE).read_text()) | {"pid": 2**22 + 12345}
    (home / STATE_FILE).write_text(json.dumps(dead))
    assert read_state(home) == {}
    clear_state(home)  # not this process's file: left alone
    assert (home / STATE_FILE).exists()


def test_runq_up_refuses_a_second_stack_in_the_same_folder(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # This test process stands for the first `runq up`: its pid is alive.
    write_state(home, redis_url="redis://127.0.0.1:7000/0", base_url="http://x/v1")
    assert cli.main(["up"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "already running" in err and str(os.getpid()) in err and "RUNQ_HOME" in err
    assert json.loads((home / STATE_FILE).read_text())["redis_url"].endswith(":7000/0")
