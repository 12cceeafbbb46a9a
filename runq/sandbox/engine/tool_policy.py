"""Which function the sandbox model calls, and with which arguments.

Two channels, the script first:

* **Script** (for tests and demos): a JSON list of rounds, each a list of calls
  ``{"name": ..., "arguments": {...}}``, given as the ``sandbox_script`` metadata entry
  or as a line ``sandbox_script: <json>`` in the instructions (or a system message).
  Round *n* (the number of tool rounds already answered since the last user message)
  makes exactly the calls of ``script[n]``; once the script is exhausted the model
  answers with the tool outputs.
  Example: ``[[{"name":"get_weather","arguments":{"city":"Paris"}},
  {"name":"get_time","arguments":{"tz":"CET"}}],[{"name":"summarize","arguments":{}}]]``.
* **Arithmetic** (:mod:`.arithmetic`): when the last user text holds an arithmetic
  expression and a calculator-like tool is offered (its name or description says
  calculator, calculate, math, arithmetic or evaluate; one string parameter), that tool
  is called with the expression, as written. A model does not do sums in its head
  when it has a calculator, and no word of "What is (3.5 + 2) * 4?" names the tool.
* **Matching policy**: each function tool scores the number of distinct words of its
  name and description (stop words removed, ``get_weather`` -> ``get``, ``weather``)
  found in the last user text; the best positive score is called (first declared wins
  ties). ``tool_choice: "required"`` calls the best even at score 0, a named
  ``tool_choice`` calls that function, ``"none"`` calls nothing. Arguments are filled
  from the user text following the JSON schema (see :func:`fill_arguments`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from runq.sandbox.engine import arithmetic, structured
from runq.sandbox.engine.transcript import Turn

SCRIPT_KEY = "sandbox_script"
_SCRIPT_LINE = re.compile(r"^\s*sandbox_script\s*:\s*(.+)$", re.MULTILINE | re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z0-9]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "get",
        "give",
        "how",
        "i",
        "in",
        "is",
        "it",
        "me",
        "my",
        "of",
        "on",
        "or",
        "please",
        "set",
        "show",
        "tell",
        "that",
        "the",
        "this",
        "to",
        "use",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "with",
        "you",
        "your",
    ]
)


class ScriptError(ValueError):
    """The script channel held something that is not a list of rounds of calls."""


def parse_script(raw: str) -> list[list[dict[str, Any]]]:
    try:
        rounds = json.loads(raw)
    except ValueError as exc:
        raise ScriptError(f"sandbox_script is not JSON: {exc}") from exc
    if not isinstance(rounds, list) or not all(isinstance(r, list) for r in rounds):
        raise ScriptError("sandbox_script must be a JSON list of rounds (lists of calls)")
    for call in (c for r in rounds for c in r):
        if isinstance(call, dict) and isinstance(call.get("refusal"), str):
            continue  # a scripted refusal: the model declines instead of answering
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise ScriptError('each scripted call needs a "name" (and optional "arguments")')
    return rounds


def find_script(
    metadata: dict[str, str] | None, instructions: str | None, turns: list[Turn]
) -> list[list[dict[str, Any]]] | None:
    """The script from metadata, instructions or a system/developer message, if any."""
    if metadata and metadata.get(SCRIPT_KEY):
        return parse_script(metadata[SCRIPT_KEY])
    texts = [instructions or ""] + [t.text for t in turns if t.role in ("system", "developer")]
    for text in texts:
        match = _SCRIPT_LINE.search(text)
        if match:
            return parse_script(match.group(1))
    return None


def tool_round(turns: list[Turn]) -> int:
    """How many tool rounds were answered since the last user message."""
    rounds, in_calls = 0, False
    for turn in turns:
        if turn.role == "user" and turn.kind == "message":
            rounds, in_calls = 0, False
        elif turn.kind == "function_call":
            if not in_calls:
                rounds += 1
            in_calls = True
        else:
            in_calls = False
    return rounds


def words(text: str) -> set[str]:
    split = re.sub(r"([a-z])([A-Z])", r"\1 \2", text or "")
    return {w.lower() for w in _WORD.findall(split.replace("_", " "))} - _STOP


def choose_tool(
    tools: list[dict[str, Any]], user_text: str, tool_choice: Any
) -> dict[str, Any] | None:
    """The function tool to call for ``user_text``, or None to answer in text."""
    if not tools or tool_choice == "none":
        return None
    if isinstance(tool_choice, dict):
        name = tool_choice.get("name") or (tool_choice.get("function") or {}).get("name")
        return next((t for t in tools if t["name"] == name), None)
    said = words(user_text)
    best, best_score = None, 0
    for tool in tools:
        score = len(said & words(tool["name"] + " " + (tool.get("description") or "")))
        if score > best_score:
            best, best_score = tool, score
    if best is None and tool_choice == "required":
        return tools[0]
    return best


def plan_call(
    tools: list[dict[str, Any]], user_text: str, tool_choice: Any
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The function tool to call for ``user_text`` and its arguments, or None for text.

    Arithmetic first (unless ``tool_choice`` names a function), then the word-matching
    policy of :func:`choose_tool`; a calculator it picks still gets the expression.
    """
    if not tools or tool_choice == "none":
        return None
    expression = arithmetic.find_expression(user_text)
    if expression is not None and not isinstance(tool_choice, dict):
        for tool in tools:
            param = arithmetic.calculator_parameter(tool)
            if param is not None:
                return tool, {param: expression}
    chosen = choose_tool(tools, user_text, tool_choice)
    if chosen is None:
        return None
    param = arithmetic.calculator_parameter(chosen) if expression is not None else None
    if param is not None:
        return chosen, {param: expression}
    return chosen, fill_arguments(chosen.get("parameters"), user_text)


def _numbers(text: str) -> list[str]:
    return re.findall(r"-?\d+(?:\.\d+)?", text)


def _quoted(text: str) -> list[str]:
    return [a or b for a, b in re.findall(r"\"([^\"]+)\"|'([^']+)'", text)]


def _capitalised(text: str) -> list[str]:
    """Capitalised words that do not merely start a sentence (``What``, ``I``)."""
    found = []
    for match in re.finditer(r"\b[A-Z][a-zA-Z]+(?:\s+[A-Z][a-zA-Z]+)*", text):
        before = text[: match.start()].rstrip()
        if not before or before[-1] in ".!?":
            continue
        found.append(match.group(0))
    return found


def _fill_one(name: str, schema: dict[str, Any], text: str, pools: dict[str, list[str]]) -> Any:
    kind = schema.get("type")
    if "enum" in schema:
        low = text.lower()
        return next((v for v in schema["enum"] if str(v).lower() in low), None)
    if kind in ("number", "integer"):
        if not pools["numbers"]:
            return None
        raw = pools["numbers"].pop(0)
        return int(float(raw)) if kind == "integer" else float(raw)
    if kind == "boolean":
        said = words(text)
        return bool(said & {"yes", "true", "enable", "enabled", "on"}) or None
    if kind == "string":
        for pool in ("quoted", "capitalised"):
            if pools[pool]:
                return pools[pool].pop(0)
        return None
    return None


def _default(schema: dict[str, Any], text: str) -> Any:
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    return {"number": 0, "integer": 0, "boolean": False, "array": [], "object": {}}.get(
        str(kind), text
    )


def fill_arguments(
    parameters: dict[str, Any] | None, text: str, material: structured.Material | None = None
) -> dict[str, Any]:
    """Arguments for a JSON schema, taken from ``text`` in declaration order.

    enums: the first enum value mentioned; numbers: the next number; strings: the next
    quoted string, else the next capitalised word group (not sentence-initial);
    booleans: true when the text says yes/true/enable/on. A required property with no
    value found gets a default (first enum value, 0, false, [], {} or the whole text).
    Compound properties (objects, arrays, unions, ``$ref``, formatted strings) get a
    schema-valid value from :mod:`.structured`, grounded in ``material`` (the text by
    default), so that an output tool's arguments always validate.
    """
    root = parameters or {}
    props = root.get("properties") or {}
    required = set(root.get("required") or [])
    pools = {"numbers": _numbers(text), "quoted": _quoted(text), "capitalised": _capitalised(text)}
    args: dict[str, Any] = {}
    grounded = material or structured.Material([text])
    for name, schema in props.items():
        node = schema or {}
        if _is_compound(node):
            # nested objects, arrays, unions and $refs: a schema-valid structured value
            if name in required:
                args[name] = structured.fill_property(root, node, name, grounded)
            continue
        value = _fill_one(name, node, text, pools)
        if value is None and name in required:
            value = _default(node, text)
        if value is not None:
            args[name] = value
    return args


def _is_compound(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return (
        isinstance(kind, list)
        or kind in ("object", "array")
        or any(k in schema for k in ("$ref", "anyOf", "oneOf", "allOf", "properties"))
        or (kind == "string" and "format" in schema)
    )
