"""The columns of `runq ask` results, and how a typed value becomes a table cell.

A row starts with what was asked: `question`, or `file` with `--per-file`. Then the
answer: `answer` (text), or with `--schema` one column per top-level property of the
schema, in the schema's order. Then the same trailer for every row: citations, status,
source, tokens, latency, job id (and `error` for an extraction, whose answer columns
cannot hold the message).

jsonl keeps every value as it came (numbers stay numbers, a nested object stays an
object); csv and md hold text, so a nested object or array becomes its JSON text, a
boolean `true`/`false` and a missing value an empty cell (`cell`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TRAILER = (
    "cited_files",
    "quotes",
    "status",
    "answered",
    "source_link",
    "source",
    "fallback_used",
    "tokens",
    "latency_s",
    "job_id",
)


@dataclass(frozen=True)
class Layout:
    """What a batch's rows hold: the label column and the answer columns."""

    label: str = "question"  # or "file" (`--per-file`)
    fields: tuple[str, ...] = ()  # the schema's top-level properties; () for text answers

    @property
    def answer_columns(self) -> tuple[str, ...]:
        return self.fields or ("answer",)

    def csv_columns(self) -> list[str]:
        extra = ("error",) if self.fields else ()
        return [self.label, *self.answer_columns, *TRAILER, *extra]


def cell(value: Any) -> str:
    """A value as csv/md text: JSON for nested values and booleans, '' for None."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | dict | list | int | float):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def field_values(parsed: Any, fields: Sequence[str]) -> dict[str, Any]:
    """The answer's value per field (None for a field it lacks, or no object at all)."""
    source = parsed if isinstance(parsed, dict) else {}
    return {name: source.get(name) for name in fields}


def found_any(values: dict[str, Any]) -> bool:
    """Did the extraction find anything: a field that is not null or empty."""
    return any(v not in (None, "", [], {}) for v in values.values())
