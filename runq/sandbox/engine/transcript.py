"""A protocol-neutral conversation transcript.

Responses input items, Assistants thread messages and Chat Completions messages are all
normalised to a list of :class:`Turn` so that one model policy (:mod:`runq.sandbox.engine.model`)
answers all three protocols the same way.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from typing import Any

from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.ids import new_id


@dataclass
class Turn:
    role: str  # user | assistant | system | developer | tool
    text: str = ""
    kind: str = "message"  # message | function_call | function_call_output
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None


def content_text(content: Any) -> str:
    """Text of a message ``content``: a string or a list of typed parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, dict):  # Assistants stores {"value": ...}
                    text = text.get("value")
                if isinstance(text, str):
                    texts.append(text)
        return "\n".join(texts)
    raise bad_request("Invalid 'content': expected a string or an array of parts.", "input")


def turns_from_response_input(raw: Any) -> list[Turn]:
    """Normalise a Responses ``input`` (string or list of items)."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [Turn("user", raw)]
    if not isinstance(raw, list):
        raise bad_request("Invalid 'input': expected a string or an array of items.", "input")
    turns: list[Turn] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise bad_request(f"Invalid 'input[{i}]': expected an object.", f"input[{i}]")
        turns.extend(_item_turns(i, item))
    return turns


def _item_turns(i: int, item: dict[str, Any]) -> list[Turn]:
    """The turns of input item ``i`` (none for items carried only for continuity)."""
    kind = item.get("type") or "message"
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise bad_request(f"Invalid 'input[{i}].role': {role!r}.", f"input[{i}].role")
        return [Turn(role, content_text(item.get("content")))]
    if kind == "function_call_output":
        if not item.get("call_id"):
            raise bad_request(
                f"Missing required parameter: 'input[{i}].call_id'.", f"input[{i}].call_id"
            )
        output = item.get("output")
        text = output if isinstance(output, str) else content_text(output)
        return [Turn("tool", text, "function_call_output", call_id=item["call_id"])]
    if kind == "function_call":
        return [
            Turn(
                "assistant",
                "",
                "function_call",
                call_id=item.get("call_id"),
                name=item.get("name"),
                arguments=item.get("arguments"),
            )
        ]
    if kind == "compaction":
        return _expand_compaction(item.get("encrypted_content"))
    if kind in _CONTINUITY_ONLY:
        return []  # carried for continuity only; the model does not need them
    raise bad_request(f"Invalid 'input[{i}].type': {kind!r}.", f"input[{i}].type")


_COMPACTION_PREFIX = "sandbox-compaction:"
# Items a client sends back for continuity; the hosted tools read what they need of them
# (an MCP approval response: runq.sandbox.engine.mcp_turn) from the request itself.
_CONTINUITY_ONLY = (
    "file_search_call", "code_interpreter_call", "reasoning", "item_reference",
    "web_search_call", "mcp_list_tools", "mcp_call", "mcp_approval_request",
    "mcp_approval_response",
)  # fmt: skip


def compaction_item(turns: list[Turn]) -> dict[str, Any]:
    """A ``compaction`` item holding ``turns``, in the sandbox's own (readable) encoding."""
    raw = json.dumps([asdict(t) for t in turns]).encode()
    return {
        "type": "compaction",
        "id": new_id("cmp"),
        "encrypted_content": _COMPACTION_PREFIX + base64.b64encode(raw).decode("ascii"),
    }


def _expand_compaction(content: Any) -> list[Turn]:
    """The turns a compaction item stands for (none when it is not the sandbox's)."""
    if not isinstance(content, str) or not content.startswith(_COMPACTION_PREFIX):
        return []
    try:
        rows = json.loads(base64.b64decode(content[len(_COMPACTION_PREFIX) :]))
        return [Turn(**row) for row in rows]
    except (ValueError, TypeError):
        return []
