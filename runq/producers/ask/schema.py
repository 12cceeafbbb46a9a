"""The output schema of `runq ask --schema FILE`: read and checked before anything runs.

An extraction writes one column per top-level property of the schema, so the schema
must describe an object with properties, and no property may take the name of a column
`runq ask` writes itself (`question`, `file`, `status`...). Each problem is refused
with a message naming the file and what is wrong, before a document is uploaded.

The schema also gives `--per-file` its default prompt: the fields to extract and their
descriptions (`extraction_prompt`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runq.errors import RunqError

# The columns every row has; a schema property of the same name would overwrite one.
RESERVED = frozenset(
    [
        "question", "file", "answer", "citations", "cited_files", "quotes", "status",
        "answered", "source_link", "source", "fallback_used", "tokens", "latency_s",
        "job_id", "error",
    ]
)  # fmt: skip
EXTRACTION_INSTRUCTIONS = (
    "Extract the requested fields from the provided file only, in the JSON format "
    "requested. Use null for a field the file does not state; do not guess."
)
QUESTION_INSTRUCTIONS = (
    "Answer the question from the provided files only, in the JSON format requested, "
    "and cite the file you used. Use null for a field the files do not state."
)


class SchemaFileError(RunqError):
    """`--schema FILE` cannot be used: unreadable, not JSON, or not an object schema."""


@dataclass(frozen=True)
class OutputSchema:
    """A checked schema and its top-level fields, in the order the schema declares them."""

    schema: dict[str, Any]
    fields: tuple[str, ...]

    def descriptions(self) -> dict[str, str]:
        props = self.schema["properties"]
        return {name: str(props[name].get("description") or "").strip() for name in self.fields}


def load(path: str | Path) -> OutputSchema:
    """Read `path` and check it (see the module docstring); `SchemaFileError` says why not."""
    shown = repr(str(path))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaFileError(f"schema file {shown} does not exist") from None
    except UnicodeDecodeError as err:
        raise SchemaFileError(f"schema file {shown} is not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise SchemaFileError(f"cannot read schema file {shown}: {err.strerror or err}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise SchemaFileError(
            f"schema file {shown} is not valid JSON: {err.msg} at line {err.lineno} "
            f"column {err.colno}"
        ) from None
    return check(value, where=f"schema file {shown}")


def check(schema: Any, *, where: str = "the schema") -> OutputSchema:
    """The schema as an `OutputSchema`, or a `SchemaFileError` naming the first problem."""
    if not isinstance(schema, dict):
        name = type(schema).__name__ if schema is not None else "null"
        raise SchemaFileError(f"{where} must be a JSON object (a JSON schema), not {name}")
    kind = schema.get("type")
    props = schema.get("properties")
    if kind != "object" or not isinstance(props, dict) or not props:
        raise SchemaFileError(
            f'{where} must describe an object: "type": "object" with at least one entry in '
            f'"properties" (one column per property); got "type": {json.dumps(kind)}'
        )
    import jsonschema  # here: a re-run that never reads a schema does not pay for it

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as err:
        at = "/".join(str(p) for p in err.absolute_path) or "(root)"
        problem = f"{where} is not a valid JSON schema at {at}: {err.message}"
        raise SchemaFileError(problem) from None
    clashes = sorted(RESERVED & set(props))
    if clashes:
        raise SchemaFileError(
            f"{where}: the propert{'y' if len(clashes) == 1 else 'ies'} "
            f"{', '.join(map(repr, clashes))} would overwrite a column runq ask writes "
            f"({', '.join(sorted(RESERVED))}); rename {'it' if len(clashes) == 1 else 'them'}"
        )
    return OutputSchema(schema, tuple(props))


def extraction_prompt(schema: OutputSchema) -> str:
    """The default `--per-file` prompt: each field with its description.

    Written as prose, not `name: description` lines: a line shaped like a fact would be
    material a model (the sandbox's too) could mistake for the answer.
    """
    parts = []
    for name, description in schema.descriptions().items():
        label = name.replace("_", " ")
        parts.append(f"{label} ({description.rstrip('.')})" if description else label)
    return "Extract from this document: " + "; ".join(parts) + "."
