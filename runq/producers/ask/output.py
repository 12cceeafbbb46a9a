"""Rows of `runq ask` results: as files (jsonl by default, csv or md by the file's
extension) and as the table printed at the end.

One row per question: question, answer, citations (file name and quoted text), status,
`answered` (False when nothing was cited, e.g. "I could not find ..."), `source_link`
(the path of the first cited document), `source` (the backend link that answered),
`fallback_used`, tokens, latency and the job id.

With `--schema`, the answer is one column per top-level field of the schema (from the
result's `output_parsed`, checked by the worker), `answered` says whether any field was
found, and `error` holds a failed job's message; with `--per-file` the row is a
document's (`file`, its path, instead of `question`). See `ask.columns`.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runq.errors import RunqError
from runq.producers.ask.columns import Layout, cell, field_values, found_any
from runq.producers.ask.corpus import Document
from runq.producers.ask.report import AskReport

if TYPE_CHECKING:
    from rich.table import Table


def _quote(text: str, citation: dict[str, Any], previous_end: int) -> str:
    """The cited text: the annotation's quote, else the answer text the citation closes."""
    if citation.get("quote"):
        return str(citation["quote"])
    index = int(citation.get("index") or 0)
    return text[previous_end:index].strip() if 0 < index <= len(text) else ""


def citations(result: dict[str, Any], *, quote_answer: bool = True) -> list[dict[str, Any]]:
    """The result's citations, each with its file and quote, in the answer's order.

    `quote_answer=False` for a JSON answer: the text a citation closes is JSON, not a
    quote; only a quote the backend gave is kept.
    """
    text = (result.get("output_text") or "") if quote_answer else ""
    out: list[dict[str, Any]] = []
    previous_end = 0
    for c in sorted(result.get("citations") or [], key=lambda c: int(c.get("index") or 0)):
        out.append(
            {
                "file": c.get("filename"),
                "file_id": c.get("file_id"),
                "quote": _quote(text, c, previous_end),
            }
        )
        previous_end = max(previous_end, int(c.get("index") or 0))
    return out


def layout(report: AskReport) -> Layout:
    return Layout("file" if report.per_file else "question", report.fields)


def rows(report: AskReport) -> list[dict[str, Any]]:
    """One row per question (per document with `--per-file`), in the order asked."""
    shape = layout(report)
    if report.per_file:
        labels = [str(doc.path) for doc in report.corpus.documents]
    else:
        labels = list(report.questions)
    by_id = report.corpus.by_file_id()
    paths = {fid: str(doc.path) for fid, doc in by_id.items()}
    out: list[dict[str, Any]] = []
    for label, job_id in zip(labels, report.job_ids, strict=False):
        row: dict[str, Any] = {shape.label: label}
        result = report.results.get(job_id)
        if result is None:
            row.update(dict.fromkeys(shape.answer_columns))
            row.update(citations=[], status="pending", answered=False, job_id=job_id)
            out.append(row)
            continue
        error = result.get("error") or {}
        message = error.get("message") if error else None
        cited = citations(result, quote_answer=not shape.fields)
        if shape.fields:
            values = field_values(result.get("output_parsed"), shape.fields)
            row.update(values)
            answered = result["status"] == "succeeded" and found_any(values)
        else:
            row["answer"] = result.get("output_text") or message
            answered = bool(cited)
        first = cited[0]["file_id"] if cited else None
        link = label if report.per_file else (paths.get(first) if first else None)
        row.update(
            {
                # Assistants' citations carry a file id only: name the document it is.
                "citations": [
                    {"file": c["file"] or _name(by_id.get(c["file_id"])), "quote": c["quote"]}
                    for c in cited
                ],
                "status": result["status"],
                "answered": answered,
                "source_link": link,
                "source": result.get("source"),
                "fallback_used": bool(result.get("fallback_used")),
                "tokens": (result.get("usage") or {}).get("total_tokens"),
                "latency_s": (result.get("timings") or {}).get("total_s"),
                "job_id": job_id,
            }
        )
        if shape.fields:
            row["error"] = message
        out.append(row)
    return out


def _name(doc: Document | None) -> str | None:
    return doc.name if doc is not None else None


def _cited_files(row: dict[str, Any]) -> str:
    return ", ".join(dict.fromkeys(c["file"] for c in row["citations"] if c["file"]))


def _cell(value: Any) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


class OutputError(RunqError):
    """The results file cannot be written."""


def check_writable(path: str | Path) -> None:
    """Refuse a results path that cannot be written before any job runs, not after.

    The folders it names may not exist yet (`write` creates them), but the nearest one
    that exists must be a folder this process may write in.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"--out {str(path)!r} is a folder; name a file in it")
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"--out {str(path)!r}: {str(existing)!r} is a file, not a folder")
    writable = os.access(path, os.W_OK) if path.exists() else os.access(existing, os.W_OK)
    if not writable:
        raise OutputError(f"--out {str(path)!r} is not writable by this user")


def write(path: str | Path, data: list[dict[str, Any]], shape: Layout | None = None) -> str:
    """Write `data` to `path` in the format its extension names; return the format.

    `shape` names the columns (`ask.columns`); the default is a question's text answer.
    A failure (a full disk, a folder that vanished) is an `OutputError` that says the
    answers are safe: they are in Redis, and the same command writes them again.
    """
    try:
        return _write(Path(path), data, shape or Layout())
    except OSError as err:
        raise OutputError(
            f"could not write the results to {str(path)!r}: {err.strerror or err}. The "
            "answers are kept: run the same command with another --out to write them "
            "(nothing runs again)"
        ) from None


def _write(path: Path, data: list[dict[str, Any]], shape: Layout) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    if ext == ".csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=shape.csv_columns(), extrasaction="ignore")
            writer.writeheader()
            for row in data:
                quotes = " | ".join(
                    f"{c['file']}: {c['quote']}" for c in row["citations"] if c["quote"]
                )
                typed = {k: cell(row.get(k)) for k in shape.fields}
                writer.writerow({**row, **typed, "cited_files": _cited_files(row),
                                 "quotes": quotes})  # fmt: skip
        return "csv"
    if ext in (".md", ".markdown"):
        heads = [shape.label, *shape.answer_columns, "cited", "status", "tokens", "latency (s)"]
        lines = ["| " + " | ".join(map(_cell, heads)) + " |", "|" + "---|" * len(heads)]
        for row in data:
            link = row.get("source_link")
            cited = f"[{_cited_files(row)}]({link})" if link else _cited_files(row)
            answers = [cell(row.get(k)) for k in shape.answer_columns]
            values = (row[shape.label], *answers, cited, row["status"], row.get("tokens"),
                      row.get("latency_s"))  # fmt: skip
            lines.append("| " + " | ".join(_cell(v) for v in values) + " |")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return "md"
    with path.open("w", encoding="utf-8") as fh:
        for row in data:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return "jsonl"


def answers_table(
    data: list[dict[str, Any]], title: str, *, status: bool = True, shape: Layout | None = None
) -> Table:
    """The rows as a terminal table: question (or file), answer (or each field, as in
    csv), cited files (and status).

    Every cell is a `Text`, never markup: questions and answers are anyone's words, and
    an answer holding `[/]` or `[bold]` must print as written, not restyle the table or
    raise `MarkupError` after every job is done.
    """
    from rich.table import Table
    from rich.text import Text

    shape = shape or Layout()
    table = Table(title=title, show_lines=True)
    table.add_column(shape.label, ratio=2)
    for name in shape.answer_columns:
        table.add_column(name, ratio=3 if not shape.fields else 2)
    table.add_column("cited file")
    if status:
        table.add_column("status")
    for row in data:
        files = ", ".join(dict.fromkeys(c["file"] for c in row["citations"] if c["file"]))
        if shape.fields:
            answers = [cell(row.get(name)) for name in shape.fields]
        else:
            answers = [row["answer"] or ("" if status else row["status"])]
        cells = [Text(row[shape.label]), *map(Text, answers), Text(files or "-")]
        table.add_row(*cells, *([Text(row["status"])] if status else []))
    return table
