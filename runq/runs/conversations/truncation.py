"""Which turns of a conversation a replay carries: the truncation policy.

In the spirit of the Assistants API's `truncation_strategy: {type: last_messages,
last_messages: N}`, with a token budget on top:

1. the instructions are always kept (they are not turns);
2. at most the last `max_turns` turns (`RUNQ_CONVERSATION_MAX_TURNS`) are kept;
3. then the oldest of those are dropped until the estimated tokens of what is left
   (`ceil(characters / 4)`, the rate limiter's estimate) fit `max_tokens`
   (`RUNQ_CONVERSATION_MAX_TOKENS`);
4. a window never starts with an assistant turn whose question was cut off: such a
   leading turn is dropped too.

Turns the record itself dropped to stay under its size cap
(`RUNQ_CONVERSATION_MAX_BYTES`, see `record.ConversationStore.save`) are gone before
the window is taken. Either way the job's result says `"truncated": true`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from runq.runs.conversations.record import Conversation
from runq.runs.ratelimit import CHARS_PER_TOKEN


@dataclass(frozen=True)
class TruncationPolicy:
    max_turns: int = 50
    max_tokens: int = 32_000


@dataclass(frozen=True)
class Window:
    """The turns a replay carries, and whether any of the conversation's were left out."""

    turns: list[dict[str, Any]]
    truncated: bool


def turn_tokens(turn: dict[str, Any]) -> int:
    """An estimate of a turn's tokens: its text, and its tool calls' arguments and outputs."""
    chars = len(turn.get("text") or "")
    for call in turn.get("tool_calls") or []:
        chars += len(str(call.get("arguments") or "")) + len(str(call.get("output") or ""))
    return math.ceil(chars / CHARS_PER_TOKEN)


def window(conversation: Conversation, policy: TruncationPolicy) -> Window:
    turns = conversation.turns[-policy.max_turns :] if policy.max_turns > 0 else []
    total = sum(turn_tokens(t) for t in turns)
    start = 0
    while start < len(turns) and total > policy.max_tokens:
        total -= turn_tokens(turns[start])
        start += 1
    kept = turns[start:]
    cut = len(kept) < len(conversation.turns)
    while cut and kept and kept[0].get("role") != "user":
        kept = kept[1:]
    return Window(kept, truncated=conversation.dropped > 0 or len(kept) < len(conversation.turns))
