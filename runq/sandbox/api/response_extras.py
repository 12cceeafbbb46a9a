"""The Responses API's side operations: counting input tokens and compacting a history.

``POST /v1/responses/input_tokens`` answers what a create with the same body would
report as ``usage.input_tokens``, without making a response. ``POST
/v1/responses/compact`` shrinks a long history the way OpenAI does: the user messages
are kept as they were and everything else becomes one ``compaction`` item whose
``encrypted_content`` the next request passes back as input. OpenAI's content is
opaque; the sandbox's is its own encoding of the compacted turns
(:func:`runq.sandbox.engine.transcript.compaction_item`), so a compacted history
continues exactly as the full one would.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runq.sandbox.api import validation
from runq.sandbox.api.http import get_state, ok, opt_str, read_json
from runq.sandbox.api.response_plan import _history
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.response_objects import input_item, usage_block
from runq.sandbox.engine.tokens import count_tokens
from runq.sandbox.engine.transcript import Turn, compaction_item, turns_from_response_input


def _transcript(request: Request, body: dict[str, Any]) -> tuple[str | None, list[Turn]]:
    state = get_state(request)
    validation.responses_model(state.config.models, body.get("model"))
    earlier, _ = _history(state, body)
    return opt_str(body, "instructions"), earlier + turns_from_response_input(body.get("input"))


def input_token_count(instructions: str | None, turns: list[Turn]) -> int:
    """What a create counts as input: the instructions and every turn's text."""
    return count_tokens(instructions or "") + sum(count_tokens(t.text) for t in turns)


async def count_input_tokens(request: Request) -> Response:
    body = await read_json(request)
    validation.known_parameters(body, validation.INPUT_TOKENS_PARAMS)
    instructions, turns = _transcript(request, body)
    return ok(
        {"object": "response.input_tokens", "input_tokens": input_token_count(instructions, turns)}
    )


async def compact(request: Request) -> Response:
    body = await read_json(request)
    validation.known_parameters(body, validation.COMPACT_PARAMS)
    instructions, turns = _transcript(request, body)
    kept = [t for t in turns if t.role == "user" and t.kind == "message"]
    folded = [t for t in turns if not (t.role == "user" and t.kind == "message")]
    output = [input_item(t) for t in kept]
    summary = compaction_item(folded)
    output.append(summary)
    out_tokens = count_tokens(summary["encrypted_content"])
    return ok(
        {
            "id": new_id("resp"),
            "object": "response.compaction",
            "created_at": int(time.time()),
            "output": output,
            "usage": usage_block(input_token_count(instructions, turns), out_tokens),
        }
    )


routes = [
    Route("/v1/responses/input_tokens", count_input_tokens, methods=["POST"]),
    Route("/v1/responses/compact", compact, methods=["POST"]),
]
