"""A job's input is bounded in every form, for every producer (runq.runs.input_limits)."""

from __future__ import annotations

from typing import Any

import pytest

from runq.errors import InvalidJobError
from runq.runs.input_limits import MAX_INPUT_CHARS, MAX_INPUT_ITEMS, check_input
from runq.runs.job import JobSpec


def _refused(value: Any) -> str:
    with pytest.raises(InvalidJobError) as refused:
        JobSpec(input=value).validate()
    return refused.value.option


def test_text_and_list_forms_share_one_character_budget() -> None:
    assert _refused("x" * (MAX_INPUT_CHARS + 1)) == "input"
    half = "x" * (MAX_INPUT_CHARS // 2 + 1)
    assert _refused([{"role": "user", "content": half}, {"role": "user", "content": half}]) == (
        "input"
    )
    parts = [{"type": "input_text", "text": "x" * 1000}] * 1001
    assert _refused([{"role": "user", "content": parts}]) == "input"
    big_output = {"type": "function_call_output", "call_id": "c", "output": "o" * 20_000_000}
    assert _refused([{"role": "user", "content": "hi"}, big_output]) == "input"


def test_items_nesting_and_values_are_bounded() -> None:
    assert _refused([{"role": "user", "content": "x"}] * (MAX_INPUT_ITEMS + 1)) == "input"
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    assert _refused([{"role": "user", "content": deep}]) == "input"
    assert _refused([{"role": "user", "content": [0] * 200_000}]) == "input"


def test_unknown_fields_and_item_types_are_refused() -> None:
    assert _refused([{"role": "user", "content": "hi", "payload": "x"}]) == "input[0]"
    assert _refused([{"type": "function_call_output", "call_id": "c", "output": "o",
                      "extra": 1}]) == "input[0]"  # fmt: skip
    assert _refused([{"type": "made_up", "x": 1}]) == "input[0].type"


def test_every_known_shape_passes() -> None:
    check_input([
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "message", "role": "user", "content": "again"},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "{}"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "t", "type": "function"}]},
        {"role": "tool", "tool_call_id": "t", "content": "42"},
        {"type": "item_reference", "id": "msg_1"},
    ])  # fmt: skip
    check_input("x" * MAX_INPUT_CHARS)
