"""The `runq` command explains itself: help and defaults for every option, `--version`,
completion scripts made from the parser, one-line errors that say what to do."""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

import runq
from runq.config.settings import get_settings
from runq.errors import ConfigurationError
from runq.producers import cli
from runq.producers.cli import completion, listing, status_view
from runq.producers.cli.help_format import NO_DEFAULT, DefaultsFormatter
from runq.producers.ops.flower import FlowerOptions, run_flower
from runq.runs.job import Job, JobSpec, JobStatus, Step
from runq.runs.recent import JobSummary


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def test_every_option_has_help_and_shows_its_default() -> None:
    commands = _subparsers(cli.build_parser())
    for name, parser in commands.items():
        if name == "sandbox":  # parsed by the sandbox's own CLI
            continue
        for action in parser._actions:
            if not action.option_strings or action.dest == "help":
                continue
            where = f"runq {name} {action.option_strings[-1]}"
            assert action.help and action.help.strip(), f"{where} has no help"
            shown = DefaultsFormatter("runq")._get_help_string(action) or ""
            if action.default not in NO_DEFAULT:
                assert "default" in shown, f"{where} does not show its default"
    submit = " ".join(commands["submit"].format_help().split())
    assert "RUNQ_MODEL, else gpt-5-mini" in submit and "--idempotency-key KEY" in submit
    up = " ".join(commands["up"].format_help().split())
    assert "task slots) (default: 1)" in up and "(default: 5555)" in up


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"runq {runq.__version__}"


def _complete(script: str, *words: str) -> list[str]:
    """What bash offers for `runq WORDS` (the last word being the one completed)."""
    line = " ".join(f"'{w}'" for w in words)
    program = f"{script}\nCOMP_WORDS=(runq {line}); COMP_CWORD={len(words)}; _runq; "
    program += 'printf "%s\\n" "${COMPREPLY[@]}"'
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_the_bash_completion_follows_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert shutil.which("bash")
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    assert _complete(script, "su") == ["submit"]
    assert _complete(script, "submit", "hi", "--backend", "") == ["responses", "assistants", "chat"]
    assert "--idempotency-key" in _complete(script, "submit", "hi", "--i")
    assert _complete(script, "jobs", "--status", "su") == ["succeeded"]
    assert _complete(script, "completion", "") == ["bash", "zsh"]
    assert _complete(script, "--ver") == ["--version"]


def test_the_zsh_completion_lists_commands_and_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["completion", "zsh"]) == 0
    script = capsys.readouterr().out
    assert script.startswith("#compdef runq")
    assert "'jobs:list recent jobs, newest first'" in script
    assert ":value:(responses assistants chat)'" in script
    if shutil.which("zsh"):
        subprocess.run(["zsh", "-n"], input=script, text=True, check=True)
    parser = cli.build_parser()
    _, commands = completion.commands(parser)
    assert {c.name for c in commands} >= {"submit", "jobs", "status", "completion", "ask"}


def _job(**timings: float) -> Job:
    job = Job.new(JobSpec(input="What is the refund window?").validate(), "job_view")
    job.timings.update(timings)
    return job


def test_status_shows_elapsed_step_and_when_the_next_poll_is_due() -> None:
    now = time.time()
    job = _job(queued_at=now - 75)
    job.move(JobStatus.RUNNING)
    job.due(Step.POLL)
    job.polls = 3
    shown = status_view.lines(job, due_at=now + 12, now=now)
    assert shown[0] == "running"
    assert "running for 1m15s" in shown[1]
    assert "poll (attempt 0, 3 polls so far)" in shown[2]
    assert shown[3].split()[:4] == ["next", "poll", "in", "12s"]
    soon = status_view.lines(job, due_at=None, now=now)
    assert "with the workers" in soon[3]
    data = status_view.as_dict(job, now + 12, now=now)
    assert data["elapsed_s"] == 75 and data["next_due_at"].endswith("Z")

    ended = _job(queued_at=now - 4, finished_at=now - 1)
    ended.move(JobStatus.RUNNING)
    ended.move(JobStatus.SUCCEEDED)
    assert status_view.lines(ended, None, now=now)[:2] == ["succeeded", ended_line(ended)]


def ended_line(job: Job) -> str:
    return status_view.lines(job, None)[1]


def test_the_jobs_table_has_one_line_a_job() -> None:
    now = time.time()
    summaries = [
        JobSummary("job_b", "running", now - 5, "responses", "gpt-5-mini", None, None, "poll",
                   "second question"),
        JobSummary("job_a", "succeeded", now - 7200, "responses", "gpt-5-mini",
                   "responses:gpt-5-mini", None, "finish", "first question"),
    ]  # fmt: skip
    lines = listing.table(summaries, now=now).splitlines()
    assert lines[0].split() == ["JOB", "STATUS", "AGE", "MODEL/SOURCE", "INPUT"]
    assert lines[1].split()[:4] == ["job_b", "running", "5.0s", "gpt-5-mini"]
    assert lines[2].split()[:4] == ["job_a", "succeeded", "2h00m", "responses:gpt-5-mini"]
    assert lines[2].endswith("first question")


def test_flower_on_a_busy_port_is_one_line_naming_it() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigurationError, match=f"port {port} on 127.0.0.1 is already in use"):
            run_flower(FlowerOptions(port=port, demo=True), redis_url="redis://127.0.0.1:1/0")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["status", "job_x"], "no Redis to read from"),
        (["result", "job_x"], "no Redis to read from"),
        (["watch", "job_x"], "no Redis to read from"),
        (["jobs"], "no Redis to read from"),
        (["submit", "hello"], "no Redis to submit to"),
        (["cancel", "job_x"], "no Redis to send the request to"),
        (["metrics", "--port", "0"], "no Redis to read metrics from"),
        (["ask", "-q", "why?", "--vector-store", "vs_1"], "no Redis to submit to"),
    ],
)
def test_without_redis_each_command_says_what_it_wanted_it_for(
    argv: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("RUNQ_HOME", str(tmp_path / ".runq"))  # no `runq up` there
    get_settings.cache_clear()
    try:
        assert cli.main(argv) == cli.EXIT_USAGE
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert err.startswith(f"runq: error: {says}: set REDIS_URL="), err
    assert "runq up" in err
