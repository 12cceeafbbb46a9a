"""Arithmetic for the sandbox model: an expression in the user's text, a calculator tool
to give it to, and a sentence from what the tool answered.

A real model asked "What is (3.5 + 2) * 4?" with a calculator tool at hand calls the
tool with the expression instead of guessing, and then says the result. The word-overlap
policy of :mod:`.tool_policy` cannot see that (the question shares no word with the
tool's description), so arithmetic is recognised on its own, deterministically:

* **An expression** is the longest span of the text made of numbers, the operators
  ``+ - * / // % ** ^`` (the multiplication, division and minus signs of Unicode read
  as ``*``, ``/`` and ``-``), parentheses, the
  constants ``pi`` and ``tau`` and calls of common math functions (``sqrt(16)``), that
  Python's own parser reads as a calculation with at least one operator or call. A
  lone number, ``Wi-Fi`` or a sentence with a dash in it is not one. Thousands
  separators (``1,000``) are dropped, since no calculator reads them.
* **A calculator-like tool** is a function tool whose name or description says
  calculator/calculate/calculation, math, arithmetic or evaluate, and which takes one
  string parameter (the only string property; no other property is required). The
  call passes the expression as that parameter.
* **A calculation's output** is a number, or a JSON object whose ``result`` (or
  ``value``, ``answer``) is a number; the answer is then ``<expression> = <result>.``.
  An output ``{"error": {"message": ...}}`` becomes ``I could not calculate
  <expression>: <message>.``
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

FUNCTIONS = frozenset(
    {"abs", "round", "min", "max", "sqrt", "exp", "log", "log10", "log2"}
    | {"sin", "cos", "tan", "floor", "ceil", "hypot"}
)
CONSTANTS = frozenset({"pi", "tau"})
_RESULT_KEYS = ("result", "value", "answer")
MAX_TOKENS = 60
_CALCULATOR_WORD = re.compile(r"\b(?:calc|math|arithmetic|evaluat)", re.IGNORECASE)

# One token of an expression, or any other character (``other``) that ends a span.
_TOKEN = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<grouped>\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,]))"
    r"|(?P<number>\d+(?:\.\d+)?|\.\d+)"
    r"|(?P<op>\*\*|//|[-+*/%^\u00d7\u00f7\u2212])"
    r"|(?P<open>\()|(?P<close>\))|(?P<comma>,)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<other>.)",
    re.DOTALL,
)
_SPELLING = str.maketrans({"\u00d7": "*", "\u00f7": "/", "\u2212": "-"})


def _spans(text: str) -> list[list[tuple[int, int]]]:
    """Candidate spans, as the bounds of their tokens: maximal runs of expression tokens
    (spaces allowed between them)."""
    tokens = [t for t in _TOKEN.finditer(text) if t.lastgroup != "space"]
    spans: list[list[tuple[int, int]]] = []
    run: list[tuple[int, int]] = []
    depth = 0
    for i, tok in enumerate(tokens):
        kind, word = tok.lastgroup, tok.group()
        if kind == "name":
            opens = i + 1 < len(tokens) and tokens[i + 1].group() == "("
            inside = (word in FUNCTIONS and opens) or word in CONSTANTS
        elif kind == "comma":
            inside = depth > 0  # an argument separator; at depth 0 it is prose
        elif kind == "grouped":
            inside = depth == 0  # 1,000 outside a call; inside one it separates arguments
        else:
            inside = kind in ("number", "op", "open", "close")
        depth = depth + (word == "(") - (word == ")") if inside else 0
        depth = max(0, depth)
        if inside:
            run.append(tok.span())
        elif run:
            spans.append(run)
            run = []
    if run:
        spans.append(run)
    return spans


def _is_calculation(node: ast.AST) -> bool:
    """Only numbers, operators, known constants and calls of known functions."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int | float) and not isinstance(node.value, bool)
    if isinstance(node, ast.Name):
        return node.id in CONSTANTS
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, ast.UAdd | ast.USub) and _is_calculation(node.operand)
    if isinstance(node, ast.BinOp):
        return _is_calculation(node.left) and _is_calculation(node.right)
    if isinstance(node, ast.Call):
        return (
            isinstance(node.func, ast.Name)
            and node.func.id in FUNCTIONS
            and not node.keywords
            and all(_is_calculation(arg) for arg in node.args)
        )
    return False


def _normalised(span: str) -> str:
    """``span`` as a calculator reads it: Unicode signs spelled ``*/-``, no thousands commas."""
    out, depth = [], 0
    for char in span.translate(_SPELLING):
        depth += (char == "(") - (char == ")")
        if char != "," or depth > 0:
            out.append(char)
    return "".join(out)


def _parses(expression: str) -> bool:
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError:
        return False
    body = tree.body
    operates = any(isinstance(n, ast.BinOp | ast.Call) for n in ast.walk(body))
    return operates and _is_calculation(body)


def find_expression(text: str) -> str | None:
    """The longest arithmetic expression in ``text`` (first on ties), or None.

    A candidate span that does not parse as a whole is narrowed token by token, so
    ``What is 2 + 2?`` and ``(so 3 * 4)`` still give ``2 + 2`` and ``3 * 4``. Spans of
    more than ``MAX_TOKENS`` tokens (a table of figures, not a question) are skipped.
    """
    best: str | None = None
    for bounds in _spans(text):
        if len(bounds) > MAX_TOKENS:
            continue
        found = None
        for width in range(len(bounds), 0, -1):
            for i in range(len(bounds) - width + 1):
                candidate = _normalised(text[bounds[i][0] : bounds[i + width - 1][1]])
                if _parses(candidate):
                    found = candidate
                    break
            if found:
                break
        if found and (best is None or len(found) > len(best)):
            best = found
    return best


def calculator_parameter(tool: dict[str, Any]) -> str | None:
    """The string parameter of a calculator-like tool, or None if ``tool`` is not one."""
    said = f"{tool.get('name') or ''} {tool.get('description') or ''}".replace("_", " ")
    said = re.sub(r"([a-z])([A-Z])", r"\1 \2", said)  # evaluateMath -> evaluate Math
    if not _CALCULATOR_WORD.search(said):
        return None
    params = tool.get("parameters") or {}
    props = params.get("properties") or {}
    strings = [n for n, s in props.items() if isinstance(s, dict) and s.get("type") == "string"]
    if len(strings) != 1:
        return None
    required = set(params.get("required") or [])
    return strings[0] if required <= {strings[0]} else None


def expression_argument(arguments: str | None) -> str | None:
    """The expression a call was made with: its one argument, if that is arithmetic."""
    try:
        args = json.loads(arguments or "")
    except ValueError:
        return None
    if not isinstance(args, dict) or len(args) != 1:
        return None
    (value,) = args.values()
    if not isinstance(value, str) or find_expression(value) != _normalised(value.strip()):
        return None
    return value.strip()


def _number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.15g}" if isinstance(value, float) else str(value)


def result_sentence(expression: str, output: str) -> str | None:
    """The answer to a calculation from the tool's output, or None if it holds no result."""
    try:
        data = json.loads(output)
    except ValueError:
        return None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict | str) and error:
            message = error.get("message") if isinstance(error, dict) else error
            if isinstance(message, str) and message.strip():
                return f"I could not calculate {expression}: {message.strip().rstrip('.')}."
            return None
        data = next((data[k] for k in _RESULT_KEYS if k in data), None)
    number = _number(data)
    return f"{expression} = {number}." if number is not None else None
