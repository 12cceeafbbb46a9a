"""Option values the `runq` commands refuse before starting anything."""

from __future__ import annotations

import pytest

from runq.producers import cli


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["up", "--workers", "0"], "argument --workers: must be at least 1 (got 0)"),
        (["up", "--flower-port", "70000"], "must be a port within 0-65535 (got 70000)"),
        (["worker", "-c", "0"], "argument -c/--concurrency: must be at least 1"),
        (["metrics", "--port", "99999"], "argument --port: must be a port within 0-65535"),
        (["gateway", "--port", "http"], "argument --port: must be a whole number (got 'http')"),
        (["flower", "--port", "-3"], "must be a port within 0-65535 (got -3)"),
        (["demo", "--latency-ms", "-1"], "argument --latency-ms: must not be negative"),
        (["up", "--tool-workers", "-1"], "argument --tool-workers: must not be negative"),
        (["submit", "hi", "--wait", "--timeout", "-1"], "--timeout: must be more than 0"),
        (["result", "job_x", "--timeout", "soon"], "must be a number of seconds (got 'soon')"),
        (["ask", "docs", "-q", "x", "--timeout", "0"], "--timeout: must be more than 0"),
        (["watch", "job_x", "--timeout", "nan"], "--timeout: must be more than 0"),
        (["submit", "hi", "--deadline", "soon"], "must be a duration such as 600, 15m, 24h"),
        (["submit", "hi", "--deadline", "0m"], "--deadline: must be more than 0 seconds"),
    ],
)
def test_bad_numbers_are_refused_by_name(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    assert says in capsys.readouterr().err


def test_good_numbers_pass() -> None:
    args = cli.build_parser().parse_args(["up", "--workers", "2", "--flower-port", "0"])
    assert (args.workers, args.flower_port, args.tool_workers) == (2, 0, 0)


@pytest.mark.parametrize(
    ("given", "seconds"), [("600", 600.0), ("90s", 90.0), ("15m", 900.0), ("24h", 86400.0)]
)
def test_submit_deadline_takes_durations_like_ask(given: str, seconds: float) -> None:
    parser = cli.build_parser()
    submitted = parser.parse_args(["submit", "hi", "--deadline", given])
    asked = parser.parse_args(["ask", "docs", "-q", "x", "--deadline", given])
    assert submitted.deadline == asked.deadline == seconds


def test_an_unreachable_redis_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from runq.config.settings import get_settings
    from runq.worker.launcher import free_port

    # A port nothing listens on, and a password that must not be printed.
    monkeypatch.setenv("REDIS_URL", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    get_settings.cache_clear()
    try:
        for argv in (["status", "job_x"], ["submit", "hello"]):
            assert cli.main(argv) == cli.EXIT_USAGE
            err = capsys.readouterr().err
            assert err.startswith("runq: error: cannot reach Redis (") and "REDIS_URL" in err
            assert "hunter2" not in err and "Traceback" not in err
    finally:
        get_settings.cache_clear()
