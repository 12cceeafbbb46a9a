"""`calculator`: arithmetic a model can trust, evaluated from the syntax tree, never `eval`.

Models are poor at arithmetic and good at writing expressions, so this tool parses the
expression with `ast` and walks a whitelist: numbers, `+ - * / // % **`, unary signs,
parentheses, a few functions (`sqrt`, `round`, `abs`, `min`, `max`, ...) and the
constants `pi`, `e` and `tau`. Names, attributes, subscripts, strings and calls to
anything else are refused with a message that says what is allowed.

Guards keep one call cheap, because a model (or a prompt injection) can ask for
`9**9**9`: expressions are at most 500 characters, exponents at most 10,000 and any
integer at most 10,000 bits (about 3,000 digits); beyond that it is a `ValueError`,
like a division by zero or a math domain error.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Annotated, Any

from runq.runs.tools import tool

MAX_LENGTH = 500
MAX_EXPONENT = 10_000
MAX_INT_BITS = 10_000

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "floor": math.floor,
    "ceil": math.ceil,
    "hypot": math.hypot,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}
_SYMBOLS = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}


@tool(timeout=5.0)
def calculator(
    expression: Annotated[str, "An arithmetic expression, e.g. '(3.5 + 2) * 4 / sqrt(16)'"],
) -> dict[str, Any]:
    """Evaluate an arithmetic expression exactly as written and return the number.

    Supports + - * / // % ** and parentheses, unary minus, the functions abs, round,
    min, max, sqrt, exp, log (natural, or log(x, base)), log10, log2, sin, cos, tan
    (radians), floor, ceil, hypot, and the constants pi, e and tau. `^` means power.
    """
    return {"expression": expression, "result": evaluate(expression)}


def evaluate(expression: str) -> Number:
    """The value of `expression`; `ValueError` says what is wrong with it."""
    text = expression.strip()
    if not text:
        raise ValueError("the expression is empty")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"the expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.replace("^", "**") if "^" in text else text, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not a valid expression: {exc.msg} at column {exc.offset}") from None
    try:
        value = _eval(tree.body)
    except RecursionError:
        raise ValueError("the expression is nested too deeply") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("the result is not a finite number")
    return value


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ValueError(f"only numbers are allowed, not {node.value!r}")
        return _checked(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _binary(node.op, _eval(node.left), _eval(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise ValueError(f"unknown name {node.id!r}; constants are {', '.join(_CONSTANTS)}")
    if isinstance(node, ast.Call):
        return _call(node)
    raise ValueError(
        f"{type(node).__name__} is not allowed; use numbers, + - * / // % **, parentheses "
        f"and the functions {', '.join(_FUNCTIONS)}"
    )


def _binary(op: ast.operator, left: Number, right: Number) -> Number:
    symbol = _SYMBOLS[type(op)]
    if isinstance(op, ast.Pow):
        _check_power(left, right)
    try:
        return _checked(_BINARY[type(op)](left, right))
    except ZeroDivisionError:
        if isinstance(op, ast.Pow):
            raise ValueError("zero cannot be raised to a negative power") from None
        verb = "modulo" if isinstance(op, ast.Mod) else "division"
        raise ValueError(f"{verb} by zero in {_fmt(left)} {symbol} {_fmt(right)}") from None
    except OverflowError:
        raise ValueError(
            f"the result of {_fmt(left)} {symbol} {_fmt(right)} is too large"
        ) from None


def _check_power(base: Number, exponent: Number) -> None:
    if abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"exponent {_fmt(exponent)} is too large (at most {MAX_EXPONENT})")
    # The result has at least (bits(base) - 1) * exponent bits: refuse before computing.
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and (abs(base).bit_length() - 1) * exponent > MAX_INT_BITS
    ):
        raise ValueError(f"{_fmt(base)} ** {exponent} is too large")


def _call(node: ast.Call) -> Number:
    if not isinstance(node.func, ast.Name):
        raise ValueError(
            f"calling a {type(node.func).__name__} is not allowed; "
            f"allowed functions: {', '.join(_FUNCTIONS)}"
        )
    if node.func.id not in _FUNCTIONS:
        raise ValueError(f"unknown function {node.func.id!r}; allowed: {', '.join(_FUNCTIONS)}")
    if node.keywords:
        raise ValueError(f"{node.func.id}() takes positional arguments only")
    name = node.func.id
    args = [_eval(arg) for arg in node.args]
    if name == "round" and len(args) == 2 and not isinstance(args[1], int):
        raise ValueError("round()'s second argument must be a whole number of digits")
    try:
        return _checked(_FUNCTIONS[name](*args))
    except (TypeError, ValueError, OverflowError) as exc:
        detail = "math domain error" if str(exc) == "math domain error" else str(exc)
        raise ValueError(f"{name}({', '.join(_fmt(a) for a in args)}): {detail}") from None


def _checked(value: Any) -> Number:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ValueError(f"an intermediate result exceeds {MAX_INT_BITS} bits")
    if isinstance(value, complex):  # (-8) ** 0.5
        raise ValueError("the result would be a complex number (negative base, fractional power)")
    return value


def _fmt(value: Number) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
