"""The README, run as written: every fenced block is claimed by a test here.

A user follows the README from a checkout: `runq up` in one terminal, the commands of
each section in another, in the same folder. This module does the same against one
`runq up` of its own (a folder holding the README's `runq.toml`, its `mytools.py`, an
`.env` naming them, and the checkout's `examples/`), runs each fenced command with only
its placeholders filled in (`JOB_ID`, a free port for a fixed one, the sample files for
`manual.pdf`), and checks what the text beside it says.

`test_every_fenced_block_is_claimed` fails when a block is added, changed or removed
without this module following: the README cannot drift from what is tested.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runq.worker.launcher import free_port
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    text: str

    @property
    def first(self) -> str:
        return self.text.splitlines()[0].strip() if self.text.strip() else ""


def fenced_blocks(markdown: str) -> list[Block]:
    blocks, lines = [], markdown.splitlines()
    i = 0
    while i < len(lines):
        match = re.match(r"^```(\w*)\s*$", lines[i])
        if match:
            start, body = i, []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            blocks.append(Block(start + 1, match.group(1), "\n".join(body)))
        i += 1
    return blocks


BLOCKS = fenced_blocks(README)


def block(first_line_start: str) -> Block:
    (found,) = [b for b in BLOCKS if b.first.startswith(first_line_start)]
    return found


# Each block, by the start of its first line: the test that runs it, or why another
# test stands for it.
CLAIMS = {
    "make demo": "test_quick_start_demo",
    "make test": "CI: .ci/run runs `make test`, this very suite",
    "pip install runq": "tests/integration/test_install.py installs the built wheel",
    "$ runq gateway": "tests/integration/test_install.py runs it without the extra",
    ".venv/bin/runq up": "readme_stack: every test here runs against it",
    '.venv/bin/runq submit "hello" --wait --json': "test_run_the_stack_and_submit_jobs",
    "# mytools.py": "readme_stack writes it; test_run_the_stack_and_submit_jobs lists it",
    "[runq]": "readme_stack's .env names it; every job here runs on its chain",
    '$ runq submit "hi" --backend telepathy': "test_a_bad_job_is_refused_as_shown",
    ".venv/bin/runq ask examples/docs --questions": "test_batch_document_qa",
    ".venv/bin/runq ask examples/docs --per-file": "test_extraction_per_file",
    '.venv/bin/runq submit "Plot monthly sales"': "test_code_interpreter_and_files",
    "RUNQ_GATEWAY_TOKENS=": "test_http_gateway",
    "from runq import Client, submit": "test_python_api",
    "from celery.result import AsyncResult": "test_python_api",
    "OPENAI_API_KEY=sk-... .venv/bin/runq worker": "test_workers_and_the_sandbox",
    ".venv/bin/runq sandbox --port 8765": "test_workers_and_the_sandbox",
    ".venv/bin/runq webhooks register": "test_webhook_endpoint_commands",
    "make test ": "test_development_targets_exist",
}


def test_every_fenced_block_is_claimed() -> None:
    firsts = [b.first for b in BLOCKS]
    unclaimed = [f for f in firsts if not any(f.startswith(key) for key in CLAIMS)]
    assert not unclaimed, f"README blocks no test runs: {unclaimed}"
    stale = [key for key in CLAIMS if not any(f.startswith(key) for f in firsts)]
    assert not stale, f"claims for blocks the README no longer has: {stale}"


# -- the folder and the stack ------------------------------------------------------------
@dataclass
class Folder:
    path: Path
    env: dict[str, str]

    def sh(self, command: str, timeout: float = 180, **extra: str):
        """One README command line, with `.venv/bin/` pointing at this interpreter's."""
        line = at_venv(command)
        return subprocess.run(
            ["bash", "-c", line],
            cwd=self.path,
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def background(self, command: str, log: str, **extra: str) -> subprocess.Popen[bytes]:
        line = at_venv(command)
        with (self.path / log).open("wb") as out:
            return subprocess.Popen(
                ["bash", "-c", line], cwd=self.path, env={**self.env, **extra},
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip


def at_venv(command: str) -> str:
    """The README's `.venv/bin/` (a word's start only) as this interpreter's bin folder."""
    return re.sub(r"(?<![\w/.])\.venv/bin/", f"{BIN}/", command)


def commands(b: Block) -> list[str]:
    """The command lines of a block: comments dropped, `\\` continuations joined."""
    joined = b.text.replace("\\\n", " ")
    lines = [line.split("  #", 1)[0].strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Folder:
    path = tmp_path_factory.mktemp("readme")
    (path / "examples").symlink_to(ROOT / "examples")
    (path / "runq.toml").write_text(block("[runq]").text + "\n")
    (path / "mytools.py").write_text(block("# mytools.py").text + "\n")
    (path / ".env").write_text("RUNQ_CONFIG=runq.toml\nRUNQ_TOOL_MODULES=examples.tools,mytools\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNQ_", "OPENAI_"))}
    env.pop("REDIS_URL", None)
    env.update(RUNQ_TEST_MODE="1", PYTHONPATH=str(path))
    return Folder(path, env)


@pytest.fixture(scope="module")
def readme_stack(folder: Folder) -> Iterator[Folder]:
    (up_line,) = commands(block(".venv/bin/runq up"))
    up = folder.background(up_line, "up.log")
    try:
        wait_for(
            lambda: (
                up.poll() is not None or b"Ctrl-C stops" in (folder.path / "up.log").read_bytes()
            ),
            timeout=120,
            what="runq up to start",
        )
        assert up.poll() is None, (folder.path / "up.log").read_text()
        yield folder
    finally:
        stop(up)


def job_id_of(done: subprocess.CompletedProcess[str]) -> str:
    found = re.search(r"job_[0-9a-f]{32}", done.stdout + done.stderr)
    assert found, done.stdout + done.stderr
    return found.group(0)


# -- the sections, in the README's order --------------------------------------------------
def test_quick_start_demo(folder: Folder) -> None:
    """`make demo` is `runq demo` after `make` has installed the project."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo: \$\(STAMP\)\n\t\$\(BIN\)/runq demo$", makefile, re.M)
    done = folder.sh(".venv/bin/runq demo", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b(\d+)/\1 answered, extraction done, chart drawn", done.stdout), done.stdout
    # The extraction's typed row, and the chart the code interpreter drew, on disk.
    assert re.search(r"NH-RS1\s*│\s*18\s*│", done.stdout), done.stdout
    written = re.search(r"chart written to (\S+\.png)", done.stdout)
    assert written, done.stdout
    chart = folder.path / written.group(1)
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_run_the_stack_and_submit_jobs(readme_stack: Folder) -> None:
    lines = commands(block('.venv/bin/runq submit "hello" --wait --json'))
    by_verb = {line.split()[1]: line for line in lines if line.split()[1] != "submit"}
    submits = [line for line in lines if line.split()[1] == "submit"]

    waited = readme_stack.sh(submits[0])
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["status"] == "succeeded"

    quick = readme_stack.sh(submits[1])
    assert quick.returncode == 0, quick.stderr
    job_id = job_id_of(quick)

    result = readme_stack.sh(by_verb["result"].replace("JOB_ID", job_id))
    assert result.returncode == 0, result.stderr
    assert "hello" in result.stdout.lower()
    status = readme_stack.sh(by_verb["status"].replace("JOB_ID", job_id))
    assert status.returncode == 0 and "succeeded" in status.stdout, status.stdout
    watch = readme_stack.sh(by_verb["watch"].replace("JOB_ID", job_id), timeout=60)
    assert watch.returncode == 0 and "final" in watch.stdout, watch.stdout + watch.stderr

    slow = readme_stack.sh(
        '.venv/bin/runq submit "take your time" --instructions "sandbox_latency_ms: 20000"'
    )
    slow_id = job_id_of(slow)
    cancel = readme_stack.sh(by_verb["cancel"].replace("JOB_ID", slow_id))
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    ended = readme_stack.sh(f".venv/bin/runq result {slow_id} --wait --json")
    assert json.loads(ended.stdout)["status"] == "cancelled"

    tools = readme_stack.sh(by_verb["tools"])
    assert tools.returncode == 0, tools.stderr
    assert "lookup_price" in tools.stdout and "calculator" in tools.stdout


def test_a_bad_job_is_refused_as_shown(readme_stack: Folder) -> None:
    shown = block('$ runq submit "hi" --backend telepathy').text.splitlines()
    done = readme_stack.sh(".venv/bin/" + shown[0].removeprefix("$ "))
    assert done.returncode == 2
    assert done.stderr.strip() == shown[1].strip()


def test_batch_document_qa(readme_stack: Folder) -> None:
    first, second, third = commands(block(".venv/bin/runq ask examples/docs --questions"))
    done = readme_stack.sh(first, timeout=300)
    assert done.returncode == 0, done.stderr
    answers = [
        json.loads(line) for line in (readme_stack.path / "results.jsonl").read_text().splitlines()
    ]
    questions = (ROOT / "examples" / "questions.txt").read_text().split("\n")
    assert len(answers) == len([q for q in questions if q.strip()])
    expected = json.loads((ROOT / "examples" / "expected_sources.json").read_text())
    for row in answers:  # each answer cites its expected file; the others say so
        assert row["status"] == "succeeded", row
        source = expected[row["question"]]
        if source["file"]:
            assert source["phrase"] in row["answer"], row
            assert any(source["file"] in json.dumps(c) for c in row["citations"]), row
        else:
            assert not row["answered"] and not row["citations"], row

    named = second.replace("manual.pdf", "examples/docs/nimbus_t3_manual.pdf").replace(
        "policy.docx", "examples/docs/warranty_and_returns.docx"
    )
    done = readme_stack.sh(named, timeout=300)
    assert done.returncode == 0, done.stderr
    answer = (readme_stack.path / "answers.md").read_text()
    assert "three years" in answer and "warranty_and_returns.docx" in answer

    store = re.search(r"vector_store=(vs_\w+)", done.stderr)
    assert store, done.stderr
    done = readme_stack.sh(third.replace("vs_abc123", store.group(1)), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    shown = done.stdout + done.stderr  # the table goes to the terminal (stderr)
    assert "45 days" in shown, shown  # from the store alone: no DOCS given


def test_code_interpreter_and_files(readme_stack: Folder) -> None:
    submit, files = commands(block('.venv/bin/runq submit "Plot monthly sales"'))
    done = readme_stack.sh(submit, timeout=180)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded", result
    (png,) = [f for f in result["files"] if f["content_type"] == "image/png"]
    wrote = readme_stack.sh(files.replace("JOB_ID", result["job_id"]))
    assert wrote.returncode == 0, wrote.stderr
    chart = readme_stack.path / "out" / png["name"]
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert hashlib.sha256(chart.read_bytes()).hexdigest() == png["sha256"]


def test_extraction_per_file(readme_stack: Folder) -> None:
    (line,) = commands(block(".venv/bin/runq ask examples/docs --per-file"))
    done = readme_stack.sh(line, timeout=300)
    assert done.returncode == 0, done.stderr
    with (readme_stack.path / "rows.csv").open(newline="") as fh:
        rows = {Path(r["file"]).name: r for r in csv.DictReader(fh)}
    assert len(rows) == len([p for p in (ROOT / "examples" / "docs").iterdir()
                             if p.suffix != ".png"])  # fmt: skip
    sensor = rows["rs1_sensor_datasheet.json"]
    assert (sensor["model"], sensor["weight_grams"]) == ("NH-RS1", "18"), sensor
    assert sensor["battery"] == "One CR2032 coin cell, included", sensor


def test_http_gateway(readme_stack: Folder) -> None:
    start, curl = commands(block("RUNQ_GATEWAY_TOKENS="))
    port = str(free_port())
    gateway = readme_stack.background(start.replace("8000", port), "gateway.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(
            lambda: readme_stack.sh(f"curl -sf {base}/healthz").returncode == 0,
            timeout=60,
            what="the gateway",
        )
        done = readme_stack.sh(curl.replace("8000", port))
        assert done.returncode == 0, done.stderr
        job = json.loads(done.stdout)
        assert job["job_id"].startswith("job_"), job
        got = readme_stack.sh(
            f"curl -sf -H 'Authorization: Bearer token-a' {base}/v1/jobs/{job['job_id']}"
        )
        assert json.loads(got.stdout)["job_id"] == job["job_id"], got.stdout + got.stderr
    finally:
        stop(gateway)


def test_python_api(readme_stack: Folder) -> None:
    api = block("from runq import Client, submit").text
    result_backend = block("from celery.result import AsyncResult").text
    script = api + "\nprint('JOB', handle.id)\njob_id = handle.id\n" + result_backend
    script += (
        "\nprint('BACKEND', AsyncResult(job_id, app=runq.worker.app).get(timeout=60)['status'])\n"
    )
    (readme_stack.path / "readme_api.py").write_text(script)
    done = readme_stack.sh(f"{sys.executable} readme_api.py", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "job.final" in done.stdout
    assert "BACKEND succeeded" in done.stdout


def test_workers_and_the_sandbox(readme_stack: Folder, tmp_path: Path) -> None:
    """The worker lines start workers that pass their ready check (then are stopped)."""
    sandbox_line, worker_line = commands(block(".venv/bin/runq sandbox --port 8765"))
    port = str(free_port())
    sandbox = readme_stack.background(sandbox_line.replace("8765", port), "sandbox.log")
    try:
        wait_for(
            lambda: readme_stack.sh(f"curl -s http://127.0.0.1:{port}/v1/models").returncode == 0,
            timeout=60,
            what="the sandbox",
        )
        for i, line in enumerate(
            [worker_line.replace("8765", port), *commands(block("OPENAI_API_KEY=sk-..."))]
        ):
            worker = readme_stack.background(line, f"worker-{i}.log")
            log = readme_stack.path / f"worker-{i}.log"
            try:
                wait_for(
                    lambda log=log, worker=worker: (
                        worker.poll() is not None or b"ready" in log.read_bytes()
                    ),
                    timeout=60,
                    what=f"worker {line!r}",
                )
                assert worker.poll() is None, log.read_text()
            finally:
                stop(worker)
    finally:
        stop(sandbox)


def test_webhook_endpoint_commands(readme_stack: Folder) -> None:
    """Register a receiver at the stack's sandbox (standing for OpenAI), serve it with the
    secret file, have a sample sent to it, rotate; `YOUR-HOST` is the receiver's."""
    register, serve, test, rotate = commands(block(".venv/bin/runq webhooks register"))
    port = str(free_port())
    register = register.replace("https://YOUR-HOST", f"http://127.0.0.1:{port}")
    done = readme_stack.sh(register)
    assert done.returncode == 0, done.stderr
    endpoint_id = re.search(r"registered (whe_\w+)", done.stdout).group(1)  # type: ignore[union-attr]
    secret_file = readme_stack.path / ".runq" / "webhooks" / "signing_secret"
    first_secret = secret_file.read_text()
    receiver = readme_stack.background(serve.replace("8010", port), "webhooks.log")
    try:
        wait_for(
            lambda: readme_stack.sh(f"curl -sf http://127.0.0.1:{port}/healthz").returncode == 0,
            timeout=60,
            what="runq webhooks",
        )
        tested = readme_stack.sh(test.replace("whe_...", endpoint_id))
        assert tested.returncode == 0 and "HTTP 200" in tested.stdout, tested.stdout + tested.stderr
        rotated = readme_stack.sh(rotate.replace("whe_...", endpoint_id))
        assert rotated.returncode == 0, rotated.stderr
        assert "valid for 24 hours" in rotated.stdout
        assert secret_file.read_text() != first_secret
        # The receiver still holds the first secret; the sandbox signs with both for a day.
        again = readme_stack.sh(test.replace("whe_...", endpoint_id))
        assert "HTTP 200" in again.stdout, again.stdout + again.stderr
    finally:
        stop(receiver)
        readme_stack.sh(f".venv/bin/runq webhooks remove {endpoint_id}")


def test_development_targets_exist() -> None:
    for line in commands(block("make test ")):
        if not line.startswith("make "):
            continue
        for target in line.split()[1:]:
            done = subprocess.run(
                ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=False
            )
            assert done.returncode == 0, f"make {target}: {done.stderr}"
