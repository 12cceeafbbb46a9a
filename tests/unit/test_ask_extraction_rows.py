"""`runq ask --schema` / `--per-file` without a stack: the schema file's checks, the job
ids, the rows and their columns in jsonl, csv and md, and the errors given up front."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from runq.config.settings import load_settings
from runq.producers import cli
from runq.producers.ask import batch, plan
from runq.producers.ask import output as ask_output
from runq.producers.ask import schema as ask_schema
from runq.producers.ask.columns import Layout, cell
from runq.producers.ask.corpus import Corpus, CorpusError, Document
from runq.producers.ask.report import AskReport
from runq.producers.client.sync import Client

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ROOT / "examples" / "schemas" / "product.json"
SPEC = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "The product name."},
        "price": {"type": ["number", "null"]},
        "in_stock": {"type": "boolean", "description": "Whether it ships today"},
        "dimensions": {"type": "object", "properties": {"w": {"type": "number"}}},
        "colours": {"type": "array", "items": {"type": "string"}},
    },
}


def write_schema(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "schema.json"
    path.write_text(text)
    return path


def test_the_example_schema_is_an_object_schema_with_described_fields() -> None:
    product = ask_schema.load(PRODUCT)
    assert product.fields == ("model", "weight_grams", "battery", "wireless")
    assert all(product.descriptions().values())


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"type": "object", "properties": {', "is not valid JSON: Expecting"),
        ("[1, 2]", "must be a JSON object (a JSON schema), not list"),
        ('{"type": "string"}', 'must describe an object: "type": "object"'),
        ('{"type": "object", "properties": {}}', "at least one entry"),
        ('{"type": "object", "properties": {"a": {"type": "text"}}}',
         "is not a valid JSON schema at properties/a/type"),
        ('{"type": "object", "properties": {"status": {}, "file": {}}}',
         "'file', 'status' would overwrite a column runq ask writes"),
    ],
)  # fmt: skip
def test_a_bad_schema_file_is_refused_naming_the_problem(
    tmp_path: Path, text: str, says: str
) -> None:
    path = write_schema(tmp_path, text)
    with pytest.raises(ask_schema.SchemaFileError, match="schema file") as caught:
        ask_schema.load(path)
    assert says in str(caught.value) and str(path) in str(caught.value)


def test_a_missing_or_binary_schema_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ask_schema.SchemaFileError, match="does not exist"):
        ask_schema.load(tmp_path / "nope.json")
    binary = tmp_path / "schema.bin"
    binary.write_bytes(b"\xff\xfe{")
    with pytest.raises(ask_schema.SchemaFileError, match="is not UTF-8 text"):
        ask_schema.load(binary)


def test_the_cli_refuses_a_bad_schema_before_it_needs_redis(tmp_path: Path, capsys) -> None:
    path = write_schema(tmp_path, '{"type": "array"}')
    # No Redis is configured here: the schema is read, and refused, first.
    assert cli.main(["ask", str(tmp_path), "--per-file", "--schema", str(path)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("runq: error: schema file") and "must describe an object" in err
    assert "Traceback" not in err
    assert cli.main(["ask", str(tmp_path)]) == cli.EXIT_USAGE
    assert "no questions: give --questions FILE or -q TEXT" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"per_file": True}, "--per-file needs the fields to extract (--schema FILE)"),
        ({"per_file": True, "vector_store": "vs_1", "schema": ask_schema.check(SPEC)},
         "cannot search --vector-store"),
        ({"per_file": True, "schema": SPEC, "backend": "chat"},
         "file_search, which the chat backend does not run"),
    ],
)  # fmt: skip
def test_per_file_options_are_checked_before_any_document_is_read(
    tmp_path: Path, kwargs: dict[str, Any], says: str
) -> None:
    client = Client("redis://127.0.0.1:1/0", load_settings())  # nothing listens there
    console = Console(file=io.StringIO())
    with pytest.raises(CorpusError, match=re.escape(says)):
        batch.run_ask(client, [str(tmp_path)], [], console=console, **kwargs)
    assert console.file.getvalue() == ""


def test_the_default_extraction_prompt_names_each_field_with_its_description() -> None:
    prompt = ask_schema.extraction_prompt(ask_schema.check(SPEC))
    assert prompt == (
        "Extract from this document: name (The product name); price; in stock (Whether it "
        "ships today); dimensions; colours."
    )
    # Prose, not `label: value` lines that could read as facts.
    assert "\n" not in prompt and "name:" not in prompt


def test_a_schema_changes_the_job_ids_and_no_schema_keeps_the_earlier_ones() -> None:
    opts = {"backend": "responses", "model": "m", "mode": "poll", "instructions": "i"}
    plain = plan.question_digest("corpus", "Q?", opts)
    assert plain == plan.question_digest("corpus", "Q?", dict(opts, output_schema=None))
    with_schema = plan.question_digest("corpus", "Q?", dict(opts, output_schema=SPEC))
    assert with_schema != plain
    other = dict(SPEC, required=["name"])
    assert plan.question_digest("corpus", "Q?", dict(opts, output_schema=other)) != with_schema


def test_per_file_asks_each_document_under_its_own_content(tmp_path: Path) -> None:
    docs = [Document(tmp_path / "a.md", "h1", 1), Document(tmp_path / "b.md", "h2", 1)]
    report = AskReport(corpus=Corpus(documents=docs), questions=["Extract."], per_file=True)
    assert plan.asks(report) == [("Extract.", "file:h1"), ("Extract.", "file:h2")]
    question_mode = AskReport(corpus=Corpus(documents=docs), questions=["Q1", "Q2"])
    fingerprint = question_mode.corpus.fingerprint
    assert plan.asks(question_mode) == [("Q1", fingerprint), ("Q2", fingerprint)]
    assert report.counters()["per_file"] == 2 and "per_file" not in question_mode.counters()


def test_cells_flatten_nested_values_as_json_and_keep_text_as_is() -> None:
    assert cell(None) == "" and cell("a, b") == "a, b" and cell(142) == "142"
    assert cell(14.95) == "14.95" and cell(True) == "true" and cell(False) == "false"
    assert cell({"w": 42, "note": "é"}) == '{"w": 42, "note": "é"}'
    assert cell(["red", "blue"]) == '["red", "blue"]'


def test_the_layout_names_the_label_answer_and_trailer_columns() -> None:
    text = Layout().csv_columns()
    assert text[:2] == ["question", "answer"] and text[-1] == "job_id"
    fields = Layout("file", ("name", "price")).csv_columns()
    assert fields[:3] == ["file", "name", "price"] and "answer" not in fields
    assert fields[-1] == "error" and "citations" not in fields


def extraction_report(tmp_path: Path) -> AskReport:
    names = ["a.pdf", "b.md", "c.txt"]
    docs = [Document(tmp_path / "docs" / n, f"h{i}", 1) for i, n in enumerate(names)]
    corpus = Corpus(documents=docs, file_ids={"h0": "file_a", "h1": "file_b"})
    parsed = {"name": "Nimbus T3", "price": 129.5, "in_stock": True, "dimensions": {"w": 88},
              "colours": ["white", "black"]}  # fmt: skip
    found = {
        "status": "succeeded", "output_text": json.dumps(parsed), "output_parsed": parsed,
        "citations": [{"file_id": "file_a", "filename": "a.pdf", "index": 80}],
        "usage": {"total_tokens": 50}, "timings": {"total_s": 0.4}, "source": "responses:m",
    }  # fmt: skip
    nothing = {"name": None, "price": None, "in_stock": None, "dimensions": {}, "colours": []}
    empty = {
        "status": "succeeded", "output_text": json.dumps(nothing), "output_parsed": nothing,
        "citations": [{"file_id": "file_b", "filename": "b.md", "index": 70}],
    }  # fmt: skip
    report = AskReport(corpus=corpus, questions=["Extract."], per_file=True,
                       fields=tuple(SPEC["properties"]), job_ids=["j1", "j2", "j3"])  # fmt: skip
    report.results = {"j1": found, "j2": empty}
    return report


def test_extraction_rows_hold_one_typed_value_per_field_and_their_citations(
    tmp_path: Path,
) -> None:
    first, second, third = ask_output.rows(extraction_report(tmp_path))
    assert first["file"].endswith("docs/a.pdf") and "question" not in first
    assert first["price"] == 129.5 and first["in_stock"] is True
    assert first["dimensions"] == {"w": 88} and first["colours"] == ["white", "black"]
    # The text a citation closes is the JSON answer, not a quote: no quote is invented.
    assert first["citations"] == [{"file": "a.pdf", "quote": ""}]
    assert first["answered"] and first["error"] is None and "answer" not in first
    assert first["source_link"] == first["file"]
    assert second["colours"] == [] and not second["answered"]  # nothing was found
    assert third["status"] == "pending" and third["name"] is None and not third["answered"]


def test_extraction_files_keep_types_in_jsonl_and_flatten_in_csv_and_md(tmp_path: Path) -> None:
    report = extraction_report(tmp_path)
    data, shape = ask_output.rows(report), ask_output.layout(report)
    assert ask_output.write(tmp_path / "r.jsonl", data, shape) == "jsonl"
    first = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])
    assert first["price"] == 129.5 and first["dimensions"] == {"w": 88}

    assert ask_output.write(tmp_path / "r.csv", data, shape) == "csv"
    with (tmp_path / "r.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames is not None
    assert reader.fieldnames[:6] == ["file", "name", "price", "in_stock", "dimensions", "colours"]
    assert rows[0]["price"] == "129.5" and rows[0]["in_stock"] == "true"
    assert json.loads(rows[0]["dimensions"]) == {"w": 88}
    assert json.loads(rows[0]["colours"]) == ["white", "black"]
    assert rows[0]["cited_files"] == "a.pdf" and rows[0]["quotes"] == ""
    assert rows[1]["name"] == "" and rows[2]["status"] == "pending"

    assert ask_output.write(tmp_path / "r.md", data, shape) == "md"
    header, rule, *lines = (tmp_path / "r.md").read_text().splitlines()
    assert header == ("| file | name | price | in_stock | dimensions | colours | cited | status "
                      "| tokens | latency (s) |")  # fmt: skip
    assert rule == "|" + "---|" * 10 and len(lines) == 3
    assert '| Nimbus T3 | 129.5 | true | {"w": 88} | ["white", "black"] |' in lines[0]


def test_a_failed_extraction_keeps_its_message_in_the_error_column(tmp_path: Path) -> None:
    report = extraction_report(tmp_path)
    message = "the answer breaks the schema at price"
    report.results["j3"] = {"status": "failed", "output_text": None, "output_parsed": None,
                            "error": {"message": message}}  # fmt: skip
    third = ask_output.rows(report)[2]
    assert third["status"] == "failed" and third["error"] == message
    assert third["name"] is None and not third["answered"]


def test_the_terminal_table_shows_the_fields(tmp_path: Path) -> None:
    report = extraction_report(tmp_path)
    table = ask_output.answers_table(ask_output.rows(report), "t", shape=ask_output.layout(report))
    console = Console(file=io.StringIO(), width=300)
    console.print(table)
    shown = console.file.getvalue()
    assert "weight" not in shown and "price" in shown and "129.5" in shown and "a.pdf" in shown
