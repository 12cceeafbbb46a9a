"""`runq ask` end to end: the real CLI, a real Redis, a real worker and the sandbox over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runq.config.settings import load_settings
from runq.producers.ask import batch
from runq.producers.client.sync import Client
from runq.runs import keys
from runq.worker.launcher import SandboxProcess, Stack
from tests.conftest import imported_modules
from tests.integration.conftest import own_database, stack_on

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "examples" / "docs"
QUESTIONS = ROOT / "examples" / "questions.txt"
EXPECTED = json.loads((ROOT / "examples" / "expected_sources.json").read_text())


@pytest.fixture(scope="module")
def stack(redis_url: str, sandbox: SandboxProcess, tmp_path_factory) -> Iterator[Stack]:
    """Workers on an empty database of this module's own: the first run must ask every
    question, and other modules ask the same corpus (what `runq ask` would reuse)."""
    url = own_database(redis_url, 3)
    with stack_on(url, sandbox, tmp_path_factory.mktemp("ask")) as running:
        yield running


def run_cli(
    stack: Stack, cwd: Path, *args: str, python: tuple[str, ...] = ()
) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "REDIS_URL": str(stack.redis_url), "OPENAI_BASE_URL": str(stack.base_url),
           "COLUMNS": "200", "RUNQ_HOME": str(cwd / ".runq")}  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, *python, "-m", "runq.producers.cli", "ask", *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    return proc, time.monotonic() - started


def backend_requests(stack: Stack) -> dict[str, int]:
    """The sandbox's count of every request it has served, by method, route and status."""
    url = str(stack.base_url).removesuffix("/v1") + "/sandbox/stats"
    with urllib.request.urlopen(url, timeout=10) as reply:
        counts = json.loads(reply.read())["requests"]
    return {route: n for route, n in counts.items() if " /sandbox/" not in route}


def counters(stderr: str) -> dict[str, str]:
    line = next(ln for ln in stderr.splitlines() if ln.startswith("runq ask: "))
    return dict(part.split("=", 1) for part in line[len("runq ask: ") :].split())


def rows(path: Path) -> dict[str, dict[str, Any]]:
    return {r["question"]: r for r in map(json.loads, path.read_text().splitlines())}


def check_answers(results: dict[str, dict[str, Any]]) -> None:
    assert set(results) == set(EXPECTED)
    for question, want in EXPECTED.items():
        row = results[question]
        assert row["status"] == "succeeded", row
        cited = {c["file"] for c in row["citations"]}
        if want["file"] is None:
            assert not row["answered"] and not cited, f"unanswerable question got: {row}"
            assert "could not find" in row["answer"].lower(), row["answer"]
            continue
        assert cited == {want["file"]}, (question, cited)
        assert want["phrase"].lower() in row["answer"].lower(), (question, row["answer"])
        assert any(want["phrase"].lower() in c["quote"].lower() for c in row["citations"]), row
        assert row["source_link"].endswith(want["file"])
        assert row["tokens"] and row["latency_s"] is not None


def test_ask_answers_every_question_then_reuses_everything(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    args = [str(DOCS), "--questions", str(QUESTIONS), "--out", str(out)]
    first, first_s = run_cli(stack, tmp_path, *args)
    assert first.returncode in (0, 1), first.stderr
    assert "logo.png: unsupported type .png" in first.stderr
    c1 = counters(first.stderr)
    assert c1["documents"] == "6" and c1["skipped"] == "1"
    assert c1["submitted"] == "10" and c1["pending"] == "0"

    before = backend_requests(stack)
    second, second_s = run_cli(stack, tmp_path, *args, python=("-X", "importtime"))
    c2 = counters(second.stderr)
    assert c2["uploaded"] == "0" and c2["reused_uploads"] == "6"
    assert c2["vector_store_reused"] == "True"
    assert c2["submitted"] == "0" and c2["reused_results"] == "10"
    # Every answer was there: the re-run read Redis and asked nothing of the backend.
    assert backend_requests(stack) == before
    # ... and imported no client it did not need: not even redis-py (`quick_reads`).
    imported = imported_modules(second.stderr)
    assert "runq.producers.ask.batch" in imported
    unneeded = {"redis", "openai", "celery"} & imported
    assert not unneeded, f"the re-run imported {sorted(unneeded)}"
    print(f"\nrunq ask: first run {first_s:.2f}s, second run {second_s:.2f}s, "
          f"ratio {second_s / first_s:.2f}")  # fmt: skip
    check_answers(rows(out))
    assert first.returncode == 0


def test_a_failed_answer_runs_again_under_a_new_attempt(stack: Stack) -> None:
    settings = load_settings(redis_url=stack.redis_url, openai_base_url=stack.base_url)
    client = Client(stack.redis_url, settings)
    question = "What does error code E7 mean?"
    first = batch.run_ask(client, [str(DOCS)], [question], timeout=60)
    (job_id,) = first.job_ids
    assert first.results[job_id]["status"] == "succeeded"
    # Make the finished job look failed, as a job whose retries ran out would.
    record = json.loads(client.redis.get(keys.job(job_id)))
    record["status"] = "failed"
    client.redis.set(keys.job(job_id), json.dumps(record))

    second = batch.run_ask(client, [str(DOCS)], [question], timeout=60)
    assert second.retried == 1 and second.submitted == 1 and second.reused_results == 0
    (retry_id,) = second.job_ids
    assert retry_id.startswith(job_id.split("-r")[0]) and retry_id.endswith("-r1")
    assert second.results[retry_id]["status"] == "succeeded"
    assert client.redis.exists(keys.job(job_id)), "the failed attempt is kept, not deleted"

    third = batch.run_ask(client, [str(DOCS)], [question], timeout=60)
    assert third.submitted == 0 and third.reused_results == 1 and third.job_ids == [retry_id]


def test_a_file_that_fails_ingestion_is_named_by_every_run(stack: Stack, tmp_path: Path) -> None:
    """The first run learns it from the backend; a re-run that asks the backend nothing
    still lists it, from Redis, so both runs report the same corpus."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "boiler.md").write_text("The boiler pressure must stay near 1.5 bar.")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 a header and nothing else")
    args = [str(docs), "-q", "What pressure must the boiler keep?"]
    first, _ = run_cli(stack, tmp_path, *args)
    assert first.returncode == 0, first.stderr
    again, _ = run_cli(stack, tmp_path, *args)
    assert again.returncode == 0, again.stderr
    for run in (first, again):
        assert "not indexed broken.pdf: Could not parse broken.pdf" in run.stderr
        assert counters(run.stderr)["skipped"] == "1"
    assert counters(again.stderr)["submitted"] == "0"


def test_ask_searches_a_vector_store_the_user_names(stack: Stack, tmp_path: Path) -> None:
    """`--vector-store ID`: no DOCS needed; DOCS given are added to that store."""
    import openai

    api = openai.OpenAI(base_url=str(stack.base_url), api_key="sk-test")
    heating = api.files.create(
        file=("heating.md", b"# Heating\nThe boiler pressure must stay near 1.5 bar."),
        purpose="assistants",
    )
    store = api.vector_stores.create(name="theirs", file_ids=[heating.id])
    question = ["-q", "What pressure must the boiler keep?", "--out", "named.jsonl"]

    first, _ = run_cli(stack, tmp_path, "--vector-store", store.id, *question)
    assert first.returncode == 0, first.stderr
    (row,) = rows(tmp_path / "named.jsonl").values()
    assert [c["file"] for c in row["citations"]] == ["heating.md"]
    assert "1.5 bar" in row["answer"]
    again, _ = run_cli(stack, tmp_path, "--vector-store", store.id, *question)
    assert counters(again.stderr)["submitted"] == "0"
    assert counters(again.stderr)["reused_results"] == "1"

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "hours.txt").write_text("The support line is open from 8 am to 6 pm on weekdays.")
    added, _ = run_cli(stack, tmp_path, str(docs), "--vector-store", store.id,
                       "-q", "When is the support line open?", "--out", "added.jsonl")  # fmt: skip
    assert added.returncode == 0, added.stderr
    (row,) = rows(tmp_path / "added.jsonl").values()
    assert [c["file"] for c in row["citations"]] == ["hours.txt"]
    names = {api.files.retrieve(f.id).filename for f in api.vector_stores.files.list(store.id)}
    assert names == {"heating.md", "hours.txt"}

    missing, _ = run_cli(stack, tmp_path, "--vector-store", "vs_missing", "-q", "Anyone?")
    assert missing.returncode == 2
    assert "--vector-store 'vs_missing' does not exist at the backend" in missing.stderr
    nothing, _ = run_cli(stack, tmp_path, "-q", "Anyone?")
    assert nothing.returncode == 2
    assert "nothing to search: give DOCS, or --vector-store ID" in nothing.stderr


def test_ask_without_a_stack_says_what_to_do(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "OPENAI_BASE_URL")}
    env["RUNQ_HOME"] = str(tmp_path / ".runq")
    proc = subprocess.run(
        [sys.executable, "-m", "runq.producers.cli", "ask", str(DOCS), "-q", "hello?"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "REDIS_URL" in proc.stderr and "runq up" in proc.stderr
