"""`runq submit`'s schema and model-setting flags become the job's options."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from runq.producers.cli import job_options
from runq.producers.cli.parser import build_parser

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def _options(*argv: str) -> dict[str, object]:
    args = build_parser().parse_args(["submit", "hi", *argv])
    return {k: v for k, v in job_options.options(args).items() if v is not None}


def test_no_flags_give_no_options() -> None:
    assert _options() == {}


def test_flags_map_to_job_options(tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(SCHEMA))
    found = _options(
        "--schema", str(path), "--schema-name", "A", "--temperature", "0.2",
        "--reasoning-effort", "low", "--reasoning-summary", "auto", "--service-tier", "flex",
        "--tool-choice", "calculator", "--no-parallel-tool-calls", "--include",
        "reasoning.encrypted_content", "--max-output-tokens", "99",
    )  # fmt: skip
    assert found == {
        "output_schema": SCHEMA, "output_name": "A", "temperature": 0.2,
        "reasoning": {"effort": "low", "summary": "auto"}, "service_tier": "flex",
        "tool_choice": {"type": "function", "name": "calculator"},
        "parallel_tool_calls": False, "include": ["reasoning.encrypted_content"],
        "max_output_tokens": 99,
    }  # fmt: skip
    assert _options("--schema", json.dumps(SCHEMA), "--tool-choice", "none") == {
        "output_schema": SCHEMA, "tool_choice": "none",
    }  # fmt: skip


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "/no/such/schema.json"])
def test_a_bad_schema_is_refused_by_argparse(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        job_options.schema(text)
