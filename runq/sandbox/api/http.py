"""Small request/response helpers shared by every route module.

Reading a JSON body, checking the types of its optional fields, finding the sandbox's
state and drawing the outcome fault of a request. Pages and lookups by id are in
:mod:`runq.sandbox.api.crud`.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.faults import FAULT_HEADER
from runq.sandbox.engine.state import SandboxState


def get_state(request: Request) -> SandboxState:
    """The state of the app serving ``request`` (set by ``create_app``)."""
    state: SandboxState = request.app.state.sandbox
    return state


def outcome_fault(request: Request) -> str | None:
    """The outcome fault for the object ``request`` creates (its header's, else the dice's)."""
    return get_state(request).outcome_fault(request.headers.get(FAULT_HEADER))


async def read_json(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 in OpenAI's shape."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise bad_request(
            "We could not parse the JSON body of your request. (HINT: This likely means "
            "you aren't using your HTTP library correctly.)"
        ) from exc
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def ok(payload: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(payload, headers=headers)


def opt_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"Invalid type for '{name}': expected a string.", name)
    return value


def opt_bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"Invalid type for '{name}': expected a boolean.", name)
    return value


def opt_int(body: dict[str, Any], name: str, minimum: int = 0) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise bad_request(f"Invalid '{name}': expected an integer >= {minimum}.", name)
    return value


def metadata(body: dict[str, Any]) -> dict[str, str]:
    """Validate ``metadata``: at most 16 string pairs, like the real API."""
    value = body.get("metadata") or {}
    if not isinstance(value, dict) or len(value) > 16:
        raise bad_request("Invalid 'metadata': expected an object of at most 16 pairs.", "metadata")
    for key, val in value.items():
        if not isinstance(val, str) or len(key) > 64 or len(val) > 512:
            raise bad_request(
                "Invalid 'metadata': keys up to 64 and values up to 512 characters, strings.",
                "metadata",
            )
    return value
