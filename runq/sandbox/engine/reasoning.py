"""Reasoning models: the hidden thought, its tokens and the ``reasoning`` output item.

OpenAI's reasoning models (``o1``, ``o3``, ``o4-mini``, ``gpt-5``...) think before they
answer: a Responses output starts with a ``reasoning`` item, usage reports
``reasoning_tokens`` (counted in the output tokens), and the response echoes
``reasoning.effort``. Clients handle those items (the Agents SDK replays them, runq
skips them), so the sandbox produces them too, deterministically: the thought is one
sentence saying what the model decided, shown as the item's summary only when
``reasoning.summary`` asks for one (as OpenAI does). Effort ``none`` thinks nothing.
"""

from __future__ import annotations

import re
from typing import Any

from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.model import Reply
from runq.sandbox.engine.tokens import count_tokens

DEFAULT_EFFORT = "medium"


def is_reasoning_model(name: str) -> bool:
    """The o-series (``o1``, ``o3-mini``, ``o4-mini``) and ``gpt-5`` (not ``gpt-5-chat``)."""
    return bool(re.match(r"^o\d", name)) or (
        name.startswith("gpt-5") and not name.startswith("gpt-5-chat")
    )


def thought(reply: Reply, user_text: str) -> str:
    """The hidden reasoning: what was asked and what the model chose to do."""
    asked = " ".join(user_text.split())[:80]
    if reply.calls:
        names = ", ".join(dict.fromkeys(c.name for c in reply.calls))
        return f"The user asked: {asked!r}. A tool can answer it, so I call {names}."
    if reply.refusal is not None:
        return f"The user asked: {asked!r}. I must decline."
    return f"The user asked: {asked!r}. I can answer from what I have."


def effort_of(model: str, reasoning: Any) -> str | None:
    if not is_reasoning_model(model):
        return None
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    return str(effort) if effort else DEFAULT_EFFORT


def reasoning_tokens(model: str, effort: str | None, reply: Reply, user_text: str) -> int:
    if effort is None or effort == "none" or not is_reasoning_model(model):
        return 0
    return count_tokens(thought(reply, user_text))


def reasoning_item(
    model: str, reasoning: Any, reply: Reply, user_text: str, encrypted: bool
) -> dict[str, Any] | None:
    """The ``reasoning`` output item (before the answer), or None for other models."""
    effort = effort_of(model, reasoning)
    if effort is None or effort == "none":
        return None
    summary_mode = reasoning.get("summary") if isinstance(reasoning, dict) else None
    text = thought(reply, user_text)
    item: dict[str, Any] = {
        "type": "reasoning",
        "id": new_id("rs"),
        "summary": [{"type": "summary_text", "text": text}] if summary_mode else [],
    }
    if encrypted:
        item["encrypted_content"] = "sandbox-reasoning:" + text.encode().hex()
    return item
