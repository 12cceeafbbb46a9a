"""What code the sandbox model writes for the code interpreter, and how it answers.

Deterministic, first match wins (documented in ``docs/sandbox.md``):

1. a fenced code block (```` ```python ````, ```` ```py ```` or a bare ```` ``` ````) in
   the last user message is run as written;
2. the tool script (``sandbox_script``, :mod:`.tool_policy`): each call named
   ``code_interpreter`` in its first round runs its ``arguments.code``;
3. a template over the first CSV file in the container, chosen by the question's
   words: ``plot``/``chart``/``graph`` draws the value column summed per label column
   (a bar chart when the question says ``bar``, else a line) and saves a PNG;
   ``mean``/``average`` and ``sum``/``total`` compute that of a column, ``by``/``per``
   another; anything else describes the table (rows, columns, and count, mean, min,
   max and sum of each numeric column).

No code (none of these applies) leaves the answer to the ordinary policy. The
templates use only the standard library's ``csv`` and matplotlib, and print their
results, which the answer quotes (:func:`answer_text`).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

from runq.sandbox.engine import tool_policy
from runq.sandbox.engine.transcript import Turn

_FENCE = re.compile(r"```(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+")
_BY = re.compile(r"\b(?:by|per|for each|each|across)\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)
_TIME_WORDS = ("month", "date", "year", "week", "day", "quarter", "period", "time")
_ADVERBS = {"monthly": "month", "yearly": "year", "weekly": "week", "daily": "day"}
# Words a question uses for a column named otherwise ("sales" asks for revenue).
_SYNONYMS = {
    "sales": ("sales", "revenue", "amount", "total"),
    "revenue": ("revenue", "sales", "amount"),
    "income": ("income", "revenue", "sales"),
    "units": ("units", "quantity", "qty", "count"),
    "quantity": ("quantity", "qty", "units"),
}


@dataclass
class Plan:
    """One piece of code to run, and what it is (``code``, ``script`` or a template)."""

    code: str
    kind: str  # code | script | plot | mean | sum | describe
    source: str | None = None  # the CSV file a template reads
    subject: str = ""  # "revenue by month": what the template computes


def fenced_code(text: str) -> str | None:
    match = _FENCE.search(text)
    return match.group(1) if match else None


def scripted_code(
    metadata: dict[str, str], instructions: str | None, turns: list[Turn]
) -> list[str]:
    """The code of the script's ``code_interpreter`` calls in its first round."""
    script = tool_policy.find_script(metadata, instructions, turns)
    if not script:
        return []
    codes = []
    for call in script[0]:
        if call.get("name") != "code_interpreter":
            continue
        args = call.get("arguments")
        code = args.get("code") if isinstance(args, dict) else args
        if isinstance(code, str):
            codes.append(code)
    return codes


def plan_code(
    question: str,
    files: dict[str, bytes],
    metadata: dict[str, str] | None = None,
    instructions: str | None = None,
    turns: list[Turn] | None = None,
) -> list[Plan]:
    """The code the model runs for ``question`` over the container's ``files`` (name ->
    bytes; only CSVs are read), or none."""
    fenced = fenced_code(question)
    if fenced is not None:
        return [Plan(fenced, "code")]
    scripted = scripted_code(metadata or {}, instructions, turns or [])
    if scripted:
        return [Plan(code, "script") for code in scripted]
    csv_name = next((n for n in sorted(files) if n.lower().endswith(".csv")), None)
    if csv_name is None:
        return []
    return [_template(question, csv_name, files[csv_name])]


# -- templates -----------------------------------------------------------------------------
def _table(data: bytes) -> tuple[list[str], list[str]]:
    """The header and which columns are numeric (every non-empty value a number)."""
    text = data[:262144].decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    rows = [row for _, row in zip(range(500), reader, strict=False)]
    numeric = []
    for i, col in enumerate(header):
        values = [row[i].replace(",", "").strip() for row in rows if i < len(row) and row[i]]
        if values and all(_is_number(v) for v in values):
            numeric.append(col)
    return header, numeric


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _words(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    return [_ADVERBS.get(w, w) for w in words]


def _mentioned(columns: list[str], words: list[str]) -> list[str]:
    """Columns the question names (a word, its plural, or a synonym), in its word order."""
    found: list[str] = []
    lowered = {c.lower(): c for c in columns}
    for word in words:
        for candidate in (word, word.rstrip("s"), *_SYNONYMS.get(word, ())):
            col = lowered.get(candidate)
            if col is not None and col not in found:
                found.append(col)
                break
    return found


def _group_column(question: str, header: list[str], value: str | None) -> str | None:
    lowered = {c.lower(): c for c in header}
    for match in _BY.finditer(question):
        word = _ADVERBS.get(match.group(1).lower(), match.group(1).lower())
        for candidate in (word, word.rstrip("s")):
            col = lowered.get(candidate)
            if col is not None and col != value:
                return col
    return None


def _template(question: str, csv_name: str, data: bytes) -> Plan:
    header, numeric = _table(data)
    words = _words(question)
    mentioned = _mentioned(header, words)
    values = [c for c in mentioned if c in numeric]
    value = values[0] if values else (numeric[-1] if numeric else None)
    labels = [c for c in header if c not in numeric]
    if value is None:
        return Plan(_describe_code(csv_name), "describe", csv_name, "the table")
    if any(w.startswith(("plot", "chart", "graph", "visuali", "draw")) for w in words):
        x = next((c for c in mentioned if c in labels), None)
        x = x or next((c for c in labels if c.lower() in _TIME_WORDS), None)
        x = x or (labels[0] if labels else None)
        kind = "bar" if "bar" in words else "line"
        subject = f"{value} by {x}" if x else value
        return Plan(_plot_code(csv_name, value, x, kind), "plot", csv_name, subject)
    for op, triggers in (("mean", ("mean", "average", "avg")), ("sum", ("sum", "total"))):
        if any(w in triggers for w in words):
            by = _group_column(question, header, value)
            subject = f"{op} of {value}" + (f" by {by}" if by else "")
            return Plan(_aggregate_code(csv_name, value, by, op), op, csv_name, subject)
    return Plan(_describe_code(csv_name), "describe", csv_name, "the table")


_PRELUDE = """import csv

with open({name!r}, newline="", encoding="utf-8-sig") as handle:
    rows = list(csv.DictReader(handle))


def num(value):
    try:
        return float(str(value).replace(",", ""))
    except ValueError:
        return None


def fmt(value):
    return f"{{value:,.2f}}".rstrip("0").rstrip(".")

"""


def _describe_code(name: str) -> str:
    return _PRELUDE.format(name=name) + (
        "columns = list(rows[0]) if rows else []\n"
        "print(f\"{len(rows)} rows, {len(columns)} columns: {', '.join(columns)}\")\n"
        "for column in columns:\n"
        "    values = [num(row[column]) for row in rows if row[column] not in (None, '')]\n"
        "    if values and all(v is not None for v in values):\n"
        "        print(\n"
        '            f"{column}: count {len(values)}, mean {fmt(sum(values) / len(values))}, "\n'
        '            f"min {fmt(min(values))}, max {fmt(max(values))}, sum {fmt(sum(values))}"\n'
        "        )\n"
        "    else:\n"
        "        distinct = sorted({row[column] for row in rows})\n"
        "        shown = ', '.join(distinct[:12])\n"
        '        print(f"{column}: {len(distinct)} distinct values: {shown}")\n'
    )


def _aggregate_code(name: str, value: str, by: str | None, op: str) -> str:
    reduce = "sum(vs) / len(vs)" if op == "mean" else "sum(vs)"
    key = f"row[{by!r}]" if by else '"all rows"'
    return _PRELUDE.format(name=name) + (
        "groups = {}\n"
        "for row in rows:\n"
        f"    v = num(row[{value!r}])\n"
        "    if v is not None:\n"
        f"        groups.setdefault({key}, []).append(v)\n"
        "for key, vs in groups.items():\n"
        f'    print(f"{op} of {value} for {{key}}: {{fmt({reduce})}} ({{len(vs)}} rows)")\n'
    )


def _plot_code(name: str, value: str, x: str | None, kind: str) -> str:
    label = f"row[{x!r}]" if x else "str(index + 1)"
    out = f"{value}_by_{x}.png" if x else f"{value}.png"
    out = re.sub(r"[^A-Za-z0-9_.-]+", "_", out).lower()
    draw = "ax.bar(labels, values)" if kind == "bar" else 'ax.plot(labels, values, marker="o")'
    return _PRELUDE.format(name=name) + (
        "import matplotlib\n"
        'matplotlib.use("Agg")\n'
        "import matplotlib.pyplot as plt\n\n"
        "totals = {}\n"
        "for index, row in enumerate(rows):\n"
        f"    v = num(row[{value!r}])\n"
        "    if v is not None:\n"
        f"        totals[{label}] = totals.get({label}, 0.0) + v\n"
        "labels, values = list(totals), list(totals.values())\n"
        "fig, ax = plt.subplots(figsize=(8, 4.5))\n"
        f"{draw}\n"
        f"ax.set_title({(value + ' by ' + x if x else value).capitalize()!r})\n"
        f"ax.set_xlabel({(x or 'row')!r})\n"
        f"ax.set_ylabel({value!r})\n"
        'ax.tick_params(axis="x", rotation=45)\n'
        "fig.tight_layout()\n"
        f"fig.savefig({out!r}, dpi=100)\n"
        f'print("{value} by {x or "row"}: " + ", ".join(f"{{k}} {{fmt(v)}}" '
        "for k, v in totals.items()))\n"
        "if values:\n"
        "    top, low = values.index(max(values)), values.index(min(values))\n"
        '    print(f"highest: {labels[top]} ({fmt(values[top])}); lowest: {labels[low]} "\n'
        '          f"({fmt(values[low])}); total: {fmt(sum(values))}")\n'
        f'print("saved {out}")\n'
    )


# -- the answer ----------------------------------------------------------------------------
def answer_text(plans: list[Plan], results: list[Any]) -> str:
    """The model's answer after running ``plans`` (``results``: the executions)."""
    parts = []
    for plan, result in zip(plans, results, strict=True):
        logs = result.logs.strip()
        if result.error is not None:
            parts.append(f"The code failed: {result.error}")
            continue
        if plan.kind == "plot":
            intro = f"I plotted {plan.subject} from {plan.source}."
        elif plan.kind in ("mean", "sum"):
            intro = f"I computed the {plan.subject} in {plan.source}."
        elif plan.kind == "describe":
            intro = f"I described {plan.source}."
        else:
            intro = "I ran the code."
        parts.append(f"{intro}\n\n{logs}" if logs else intro + " It printed nothing.")
    return "\n\n".join(parts)
