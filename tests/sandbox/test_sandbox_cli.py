"""The command line: ``python -m sandbox --port 0`` prints the real URL and serves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from runq.sandbox.engine.config import SandboxConfig, parse_faults
from runq.sandbox.server.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def test_cli_port_zero_prints_real_url_and_serves() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "runq.sandbox", "--port", "0", "--latency-ms", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("sandbox listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert not url.endswith(":0/v1")
        with openai.OpenAI(base_url=url, api_key="k", max_retries=0, timeout=10) as client:
            reply = client.responses.create(model="gpt-4o-mini", input="cli")
        assert reply.output_text == "Echo: cli"
    finally:
        _stop(proc)


def test_env_gives_defaults() -> None:
    cfg = SandboxConfig.from_env(
        {
            "RUNQ_SANDBOX_PORT": "9000",
            "RUNQ_SANDBOX_LATENCY_MS": "5",
            "RUNQ_SANDBOX_FAULTS": "500=0.5,hang=0.1",
            "RUNQ_SANDBOX_API_KEYS": "a,b",
            "RUNQ_SANDBOX_TOKENS_PER_SECOND": "50",
        }
    )
    assert (cfg.port, cfg.latency_ms, cfg.api_keys) == (9000, 5, ["a", "b"])
    assert cfg.faults == {"500": 0.5, "hang": 0.1}
    assert cfg.tokens_per_second == 50.0
    assert cfg.host == "127.0.0.1"


def test_bad_fault_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="bad fault entry"):
        parse_faults("404=0.1")
    with pytest.raises(ValueError, match="more than 1"):
        parse_faults("500=0.7,503=0.7")


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"RUNQ_SANDBOX_PORT": "99999"}, "RUNQ_SANDBOX_PORT: must be within 0-65535"),
        ({"RUNQ_SANDBOX_LATENCY_MS": "abc"}, "RUNQ_SANDBOX_LATENCY_MS: must be an integer"),
        ({"RUNQ_SANDBOX_TOKENS_PER_SECOND": "fast"}, "TOKENS_PER_SECOND: must be a number"),
        ({"RUNQ_SANDBOX_RPM": "-1"}, "RUNQ_SANDBOX_RPM: must not be negative"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        SandboxConfig.from_env(env)


def test_bad_flags_are_refused_before_binding(capsys: pytest.CaptureFixture[str]) -> None:
    from runq.sandbox.server.cli import main

    for argv, says in [(["--port", "99999"], "port must be within 0-65535"),
                       (["--latency-ms", "-5"], "latency_ms must not be negative")]:  # fmt: skip
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
        assert says in capsys.readouterr().err


def test_parser_knows_every_documented_flag() -> None:
    args = build_parser().parse_args(
        [
            "--host",
            "0.0.0.0",
            "--port",
            "1",
            "--latency-ms",
            "2",
            "--rpm",
            "3",
            "--tpm",
            "4",
            "--faults",
            "500=0.1",
            "--seed",
            "5",
        ]
    )
    assert (args.host, args.port, args.latency_ms, args.rpm, args.tpm, args.seed) == (
        "0.0.0.0",
        1,
        2,
        3,
        4,
        5,
    )


def _serve(*flags: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "runq.sandbox", "--port", "0", "--latency-ms", "0", *flags],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    return proc, line.rsplit(" ", 1)[-1]


def _stop(proc: subprocess.Popen[str]) -> int | None:
    """SIGTERM, then read what is left of its output (which closes the pipes); its exit
    status."""
    proc.terminate()
    proc.communicate(timeout=10)
    return proc.returncode


def test_cli_snapshot_is_saved_on_sigterm_and_loaded_again(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    flags = ("--snapshot", str(path), "--snapshot-interval", "0")
    proc, url = _serve(*flags)
    try:
        client = openai.OpenAI(base_url=url, api_key="k", max_retries=0, timeout=10)
        resp = client.responses.create(model="gpt-4o-mini", input="kept")
        client.close()
    finally:
        # SIGTERM: a clean shutdown, which saves. uvicorn shuts down, then re-raises the
        # signal: the exit status is -SIGTERM.
        assert _stop(proc) in (0, -signal.SIGTERM)
    assert resp.id in json.loads(path.read_text())["objects"]["responses"]
    proc, url = _serve(*flags)
    try:
        client = openai.OpenAI(base_url=url, api_key="k", max_retries=0, timeout=10)
        assert client.responses.retrieve(resp.id).output_text == "Echo: kept"
        client.close()
    finally:
        _stop(proc)


def test_cli_refuses_a_bad_snapshot(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    done = subprocess.run(
        [sys.executable, "-m", "runq.sandbox", "--port", "0", "--snapshot", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 1
    assert "sandbox: snapshot" in done.stderr and "not a JSON object" in done.stderr
