"""`runq ask --schema` and `--per-file`: extraction end to end, with the real CLI, a real
Redis, a real worker and the sandbox over HTTP, checked against the sample documents."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from runq.config.settings import load_settings
from runq.producers.ask import batch
from runq.producers.ask import output as ask_output
from runq.producers.ask import schema as ask_schema
from runq.producers.client.sync import Client
from runq.runs import keys
from runq.worker.launcher import Stack
from tests.conftest import wait_for
from tests.integration.test_ask import backend_requests, counters, run_cli

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "examples" / "docs"
PRODUCT = ROOT / "examples" / "schemas" / "product.json"
FIELDS = ["model", "weight_grams", "battery", "wireless"]
NOTHING = dict.fromkeys(FIELDS)


def expected_rows() -> dict[str, dict[str, Any]]:
    """What each sample document states, read from the documents themselves: the RS1 data
    sheet's JSON, the manual's specification table (the text the PDF is built from); the
    other documents state none of these fields."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import make_corpus
    finally:
        sys.path.pop(0)
    sheet = json.loads((DOCS / "rs1_sensor_datasheet.json").read_text())
    specs = sheet["specifications"]
    manual = make_corpus.MANUAL_TEXT

    def spec_line(label: str) -> str:
        found = re.search(rf"^- {label}: (.+)$", manual, re.MULTILINE)
        assert found, label
        return found.group(1).strip()

    weight = re.fullmatch(r"(\d+) g", spec_line("Weight"))
    assert weight
    return {
        "rs1_sensor_datasheet.json": {
            "model": sheet["product"]["model"],
            "weight_grams": specs["weight_g"],
            "battery": specs["battery"],
            "wireless": specs["wireless"],
        },
        "nimbus_t3_manual.pdf": {
            "model": spec_line("Model number"),
            "weight_grams": int(weight.group(1)),
            "battery": None,
            "wireless": spec_line("Wireless"),
        },
        "faq.html": NOTHING,
        "release_notes.md": NOTHING,
        "support_and_shipping.txt": NOTHING,
        "warranty_and_returns.docx": NOTHING,
    }


def by_file(path: Path) -> dict[str, dict[str, Any]]:
    return {Path(r["file"]).name: r for r in map(json.loads, path.read_text().splitlines())}


def test_per_file_extraction_gives_one_typed_row_per_document(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "rows.csv"
    args = [str(DOCS), "--per-file", "--schema", str(PRODUCT)]
    first, _ = run_cli(stack, tmp_path, *args, "--out", str(out))
    assert first.returncode == 0, first.stderr
    c1 = counters(first.stderr)
    assert c1["documents"] == "6" and c1["per_file"] == "6" and c1["submitted"] == "6"
    assert c1["stores_created"] == "6" and c1["succeeded"] == "6"

    with out.open(newline="") as fh:
        reader = csv.DictReader(fh)
        table = list(reader)
    assert reader.fieldnames is not None
    assert reader.fieldnames[: 1 + len(FIELDS)] == ["file", *FIELDS]
    assert "question" not in reader.fieldnames and "answer" not in reader.fieldnames
    want = expected_rows()
    assert sorted(Path(r["file"]).name for r in table) == sorted(want)
    for row in table:
        name = Path(row["file"]).name
        expected = want[name]
        for field in FIELDS:
            value = expected[field]
            assert row[field] == ("" if value is None else str(value)), (name, field, row)
        # Each row cites its own document, and only it.
        assert row["cited_files"] == name, row
        assert row["status"] == "succeeded"
        assert row["answered"] == str(any(v is not None for v in expected.values()))

    # The same command, written as jsonl: nothing runs again, nothing is asked of the
    # backend, and the values keep their JSON types.
    before = backend_requests(stack)
    jsonl = tmp_path / "rows.jsonl"
    second, _ = run_cli(stack, tmp_path, *args, "--out", str(jsonl))
    assert second.returncode == 0, second.stderr
    c2 = counters(second.stderr)
    assert c2["submitted"] == "0" and c2["reused_results"] == "6" and c2["uploaded"] == "0"
    assert backend_requests(stack) == before
    rows = by_file(jsonl)
    assert set(rows) == set(want)
    for name, expected in want.items():
        assert {f: rows[name][f] for f in FIELDS} == expected, name
        assert [c["file"] for c in rows[name]["citations"]] == [name]
    assert isinstance(rows["nimbus_t3_manual.pdf"]["weight_grams"], int)
    assert rows["rs1_sensor_datasheet.json"]["error"] is None

    md = tmp_path / "rows.md"
    third, _ = run_cli(stack, tmp_path, *args, "--out", str(md))
    assert third.returncode == 0, third.stderr
    header, _rule, *lines = md.read_text().splitlines()
    assert header.startswith("| file | model | weight_grams | battery | wireless | cited |")
    assert len(lines) == 6 and any("| NH-RS1 | 18 |" in line for line in lines)


def test_schema_in_question_mode_answers_each_question_as_columns(
    stack: Stack, tmp_path: Path
) -> None:
    out = tmp_path / "answers.jsonl"
    sensor_q = "What battery does the RS1 room sensor use?"
    thermostat_q = "What are the technical specifications of the Nimbus T3 thermostat?"
    args = [str(DOCS), "-q", sensor_q, "-q", thermostat_q, "--schema", str(PRODUCT)]
    proc, _ = run_cli(stack, tmp_path, *args, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = {r["question"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert list(rows) == [sensor_q, thermostat_q]
    want = expected_rows()
    # A question searches the whole corpus: its fields come from the best results. The
    # T3 question's results also hold the RS1 data sheet (it names the T3), whose battery
    # the sandbox takes as well, so that field is not pinned for it.
    for question, name, fields in [
        (sensor_q, "rs1_sensor_datasheet.json", FIELDS),
        (thermostat_q, "nimbus_t3_manual.pdf", ["model", "weight_grams", "wireless"]),
    ]:
        row = rows[question]
        assert "answer" not in row and row["status"] == "succeeded" and row["answered"]
        assert {f: row[f] for f in fields} == {f: want[name][f] for f in fields}, question
        assert [c["file"] for c in row["citations"]] == [name]
        assert row["source_link"].endswith(name)

    csv_out = tmp_path / "answers.csv"
    again, _ = run_cli(stack, tmp_path, *args, "--out", str(csv_out))
    assert counters(again.stderr)["reused_results"] == "2"
    lines = {r["question"]: r for r in csv.DictReader(csv_out.open(newline=""))}
    assert lines[sensor_q]["weight_grams"] == "18" and lines[thermostat_q]["model"] == "NH-T3"


def test_a_failed_extraction_runs_again_and_the_others_are_reused(
    stack: Stack, tmp_path: Path
) -> None:
    settings = load_settings(redis_url=stack.redis_url, openai_base_url=stack.base_url)
    client = Client(stack.redis_url, settings)
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("rs1_sensor_datasheet.json", "faq.html"):
        (docs / name).write_bytes((DOCS / name).read_bytes())
    schema = ask_schema.load(PRODUCT)
    prompt = ["Which wireless connection and battery does the product use?"]
    first = batch.run_ask(client, [str(docs)], prompt, timeout=120, schema=schema, per_file=True)
    assert first.submitted == 2 and first.done == 2
    sheet_job = first.job_ids[[d.name for d in first.corpus.documents].index(
        "rs1_sensor_datasheet.json")]  # fmt: skip
    assert first.results[sheet_job]["output_parsed"]["battery"].startswith("One CR2032")
    # Make one document's job look failed, as a job whose retries ran out would: once
    # the finish's publication (its last write of the record) has committed.
    record = wait_for(
        lambda: (r := json.loads(client.redis.get(keys.job(sheet_job)))).get("published") and r,
        timeout=20,
        what="the finish's publication",
    )
    record["status"] = "failed"
    client.redis.set(keys.job(sheet_job), json.dumps(record))

    second = batch.run_ask(client, [str(docs)], prompt, timeout=120, schema=schema, per_file=True)
    assert second.retried == 1 and second.submitted == 1 and second.reused_results == 1
    assert sheet_job + "-r1" in second.job_ids
    assert second.results[sheet_job + "-r1"]["output_parsed"]["wireless"] == (
        "Bluetooth Low Energy 5.0"
    )
    # The document's store was reused: nothing was uploaded or built again.
    assert second.corpus.uploaded == 0 and second.corpus.stores_created == 0


def test_schema_on_the_assistants_backend_gives_valid_json_with_its_citation(
    stack: Stack, tmp_path: Path
) -> None:
    """Assistants take the schema as the run's `response_format`; the answer stays JSON
    (no citation marker inside it) and keeps its citation."""
    settings = load_settings(redis_url=stack.redis_url, openai_base_url=stack.base_url)
    client = Client(stack.redis_url, settings)
    question = "What battery does the RS1 room sensor use?"
    report = batch.run_ask(
        client, [str(DOCS)], [question], timeout=120, schema=ask_schema.load(PRODUCT),
        backend="assistants",
    )  # fmt: skip
    assert report.done == 1, report.results
    (row,) = ask_output.rows(report)
    assert {f: row[f] for f in FIELDS} == expected_rows()["rs1_sensor_datasheet.json"]
    assert row["answered"] and row["source_link"].endswith("rs1_sensor_datasheet.json")
    # Assistants' citations carry a file id only; the row names the document.
    assert row["citations"] == [{"file": "rs1_sensor_datasheet.json", "quote": ""}]


def test_per_file_on_the_assistants_backend_searches_each_document_alone(
    stack: Stack, tmp_path: Path
) -> None:
    """An assistant holds its vector stores: jobs searching other documents must not
    share one (the second job used to search the first job's document)."""
    out = tmp_path / "rows.jsonl"
    args = [str(DOCS), "--per-file", "--schema", str(PRODUCT), "--backend", "assistants"]
    done, _ = run_cli(stack, tmp_path, *args, "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = by_file(out)
    want = expected_rows()
    assert set(rows) == set(want)
    for name, expected in want.items():
        assert {f: rows[name][f] for f in FIELDS} == expected, name
