"""Arithmetic: the sandbox model calls a calculator for a sum and says its result.

`runq submit "What is (3.5 + 2) * 4 ?" --tool calculator` (the README's example) used to
answer `Echo: ...`: no word of the question names the tool, so the word-matching policy
never called it. The unit tests pin the policy (docs/sandbox.md, rules 2 and 3); the
last tests run it over HTTP with the official client and the real tool's schema.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from sandbox_helpers import wait_until

from examples.tools.calculator import calculator, evaluate
from runq.sandbox.engine import arithmetic, model
from runq.sandbox.engine.transcript import Turn

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Assistants is deprecated

QUESTION = "What is (3.5 + 2) * 4 ?"
SPEC = calculator.tool_spec  # type: ignore[attr-defined]
CALCULATOR: dict[str, Any] = {
    "name": SPEC.name,
    "description": SPEC.description,
    "parameters": SPEC.parameters,
}
WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "Weather forecast for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def tool_output(expression: str) -> str:
    """What a runq worker sends back: the tool's dict as sorted JSON."""
    return json.dumps({"expression": expression, "result": evaluate(expression)}, sort_keys=True)


# --- the expression in the user's text ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expression"),
    [
        (QUESTION, "(3.5 + 2) * 4"),
        ("What is 2+2?", "2+2"),
        ("Compute sqrt(16) + max(1, 2) for me", "sqrt(16) + max(1, 2)"),
        ("and 2 ^ 10?", "2 ^ 10"),
        ("12 \u00d7 3 \u00f7 4 \u2212 1", "12 * 3 / 4 - 1"),
        ("Add 1,000 + 2,500 please", "1000 + 2500"),
        ("(so 3 * 4)", "3 * 4"),
        ("x = 5 / (2 - 2)", "5 / (2 - 2)"),
        ("pi * 2", "pi * 2"),
    ],
)
def test_an_expression_is_found_as_written(text: str, expression: str) -> None:
    assert arithmetic.find_expression(text) == expression


@pytest.mark.parametrize(
    "text",
    ["How do I set up Wi-Fi?", "I have 3 cats", "What is -3?", "3 +", "The T3 - Nimbus", ""],
)
def test_no_calculation_no_expression(text: str) -> None:
    assert arithmetic.find_expression(text) is None


def test_a_table_of_figures_is_not_a_question() -> None:
    assert arithmetic.find_expression(" ".join(["1 +"] * 100) + " 1") is None


# --- which tool is a calculator -----------------------------------------------------------


def test_the_example_calculator_is_calculator_like() -> None:
    assert arithmetic.calculator_parameter(CALCULATOR) == "expression"


@pytest.mark.parametrize(
    ("name", "description", "properties", "required", "param"),
    [
        ("evaluateMath", "", {"q": "string", "precision": "integer"}, [], "q"),
        ("run", "Does arithmetic", {"expr": "string"}, ["expr"], "expr"),
        ("calc", "", {"a": "string", "b": "string"}, [], None),  # two strings: which?
        ("calc", "", {"a": "string", "n": "integer"}, ["a", "n"], None),  # n has no value
        ("get_weather", "Weather", {"city": "string"}, [], None),  # not a calculator
    ],
)
def test_a_calculator_takes_one_string(
    name: str, description: str, properties: dict[str, str], required: list[str], param: str | None
) -> None:
    tool = {
        "name": name,
        "description": description,
        "parameters": {
            "type": "object",
            "properties": {k: {"type": v} for k, v in properties.items()},
            "required": required,
        },
    }
    assert arithmetic.calculator_parameter(tool) == param


# --- the model's policy ---------------------------------------------------------------


def ask(text: str, tools: list[dict[str, Any]], tool_choice: Any = "auto") -> model.Reply:
    return model.reply(model.ModelInput([Turn("user", text)], tools=tools, tool_choice=tool_choice))


def test_arithmetic_calls_the_calculator_with_the_expression() -> None:
    (call,) = ask(QUESTION, [WEATHER, CALCULATOR]).calls
    assert call.name == "calculator"
    assert json.loads(call.arguments) == {"expression": "(3.5 + 2) * 4"}


def test_without_a_calculator_or_with_tools_off_arithmetic_is_text() -> None:
    assert ask(QUESTION, [WEATHER]).calls == []
    assert ask(QUESTION, [CALCULATOR], tool_choice="none").text == f"Echo: {QUESTION}"


def test_a_named_tool_choice_wins_over_arithmetic() -> None:
    (call,) = ask(
        QUESTION, [CALCULATOR, WEATHER], {"type": "function", "name": "get_weather"}
    ).calls
    assert call.name == "get_weather"
    (call,) = ask(QUESTION, [WEATHER, CALCULATOR], {"type": "function", "name": "calculator"}).calls
    assert json.loads(call.arguments) == {"expression": "(3.5 + 2) * 4"}


def after_round(outputs: dict[str, str]) -> str:
    """The model's answer once each ``expression -> output`` came back."""
    turns = [Turn("user", "sums")]
    for i, expression in enumerate(outputs):
        args = json.dumps({"expression": expression})
        turns.append(Turn("assistant", "", "function_call", f"c{i}", "calculator", args))
    for i, output in enumerate(outputs.values()):
        turns.append(Turn("tool", output, "function_call_output", f"c{i}"))
    return model.reply(model.ModelInput(turns, tools=[CALCULATOR])).text


def test_the_result_is_said_in_a_clean_sentence() -> None:
    assert after_round({"(3.5 + 2) * 4": tool_output("(3.5 + 2) * 4")}) == "(3.5 + 2) * 4 = 22."
    assert after_round({"0.1 + 0.2": "0.30000000000000004"}) == "0.1 + 0.2 = 0.3."
    both = {"2 ** 10": tool_output("2 ** 10"), "7 / 2": tool_output("7 / 2")}
    assert after_round(both) == "2 ** 10 = 1024. 7 / 2 = 3.5."


def test_a_failed_calculation_says_why() -> None:
    error = {"error": {"code": "tool_raised", "message": "division by zero in 1 / 0"}}
    assert after_round({"1 / 0": json.dumps(error)}) == (
        "I could not calculate 1 / 0: division by zero in 1 / 0."
    )


def test_other_outputs_keep_the_generic_answer() -> None:
    assert after_round({"1 + 1": "two-ish"}) == "Tool results: calculator: two-ish"


# --- over HTTP, with the official client ----------------------------------------------


def test_responses_call_the_calculator_then_answer_with_its_result(client: openai.OpenAI) -> None:
    tools: Any = [{"type": "function", **CALCULATOR}]
    first = client.responses.create(model="gpt-4o-mini", input=QUESTION, tools=tools)
    (call,) = first.output
    assert call.type == "function_call" and call.name == "calculator"
    expression = json.loads(call.arguments)["expression"]
    assert expression == "(3.5 + 2) * 4"
    second = client.responses.create(
        model="gpt-4o-mini",
        previous_response_id=first.id,
        input=[
            {
                "type": "function_call_output",
                "call_id": call.call_id,
                "output": tool_output(expression),
            }
        ],
        tools=tools,
    )
    assert second.output_text == "(3.5 + 2) * 4 = 22."


def test_chat_completions_call_the_calculator_then_answer(client: openai.OpenAI) -> None:
    tools: Any = [{"type": "function", "function": CALCULATOR}]
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    expression = json.loads(call.function.arguments)["expression"]  # type: ignore[union-attr]
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": tool_output(expression)},
    ]
    second = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
    assert second.choices[0].message.content == "(3.5 + 2) * 4 = 22."


def test_assistants_runs_require_the_calculator_then_answer(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(
        model="gpt-4o-mini", tools=[{"type": "function", "function": CALCULATOR}]
    )
    run = client.beta.threads.create_and_run(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": QUESTION}]}
    )
    run = wait_until(
        lambda: client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id),
        lambda r: r.status not in ("queued", "in_progress"),
    )
    assert run.status == "requires_action" and run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    expression = json.loads(call.function.arguments)["expression"]
    client.beta.threads.runs.submit_tool_outputs(
        run_id=run.id,
        thread_id=run.thread_id,
        tool_outputs=[{"tool_call_id": call.id, "output": tool_output(expression)}],
    )
    wait_until(
        lambda: client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id),
        lambda r: r.status == "completed",
    )
    reply = client.beta.threads.messages.list(run.thread_id).data[0]
    assert reply.content[0].text.value == "(3.5 + 2) * 4 = 22."  # type: ignore[union-attr]
