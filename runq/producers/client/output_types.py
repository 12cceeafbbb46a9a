"""Typed outputs for the Python API: a pydantic model class as a job's output schema,
and the job's `output_parsed` back as an instance of it.

A web app wants the answer as its own type, not as a dict to pick apart: `submit(...,
output_type=Invoice)` sends `Invoice.model_json_schema()` as the job's schema (strict
when every field is required, see `runs.structured_output`), and
`handle.output()` returns an `Invoice`. The job record holds only the schema and the
parsed JSON, so any producer in any language reads the same result; the class lives
in the process that submitted (or that passes it to `get_job`).
"""

from __future__ import annotations

import re
from typing import Any

from runq.errors import InvalidJobError, JobFailedError


def schema_options(options: dict[str, Any]) -> type[Any] | None:
    """Turn an `output_type` option into `output_schema` (and `output_name`), in place;
    return the class (None when there is none)."""
    output_type = options.pop("output_type", None)
    if output_type is None:
        return None
    if not isinstance(output_type, type) or not hasattr(output_type, "model_json_schema"):
        raise InvalidJobError("output_type", f"must be a pydantic model class, got {output_type!r}")
    if options.get("output_schema") is not None:
        raise InvalidJobError("output_type", "give output_type or output_schema, not both")
    options["output_schema"] = output_type.model_json_schema()
    if options.get("output_name") is None:
        options["output_name"] = re.sub(r"[^A-Za-z0-9_-]", "_", output_type.__name__)[:64]
    return output_type


def typed_output(job_id: str, result: dict[str, Any], output_type: type[Any] | None) -> Any:
    """A succeeded job's parsed answer, as `output_type` when given; `JobFailedError`
    for any other ending (the error says why, `attempts` what each link answered)."""
    if result.get("status") != "succeeded":
        raise JobFailedError(job_id, result)
    parsed = result.get("output_parsed")
    if output_type is None:
        return parsed
    return output_type.model_validate(parsed)
