"""The tool registry: schemas derived from hints, argument checking, running, loading."""

from __future__ import annotations

import contextvars
import dataclasses
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest

from runq.errors import ConfigurationError, ToolError
from runq.runs.tools import (
    ToolRegistry,
    ToolSpec,
    error_output,
    load_tool_modules,
    parameters_from_signature,
    registry,
    tool,
)

WriteModule = Callable[[str, str], str]


@pytest.fixture
def reg() -> ToolRegistry:
    return ToolRegistry()


@pytest.fixture
def weather(reg: ToolRegistry) -> ToolSpec:
    @reg.tool(timeout=2.0, retries=1)
    def get_weather(
        city: Annotated[str, "City name"],
        unit: Literal["celsius", "fahrenheit"] = "celsius",
        days: int = 1,
    ) -> dict[str, Any]:
        """Get the weather forecast for a city.

        Longer explanation the model does not need.
        """
        return {"city": city, "unit": unit, "days": days}

    return reg.get("get_weather")


# Schema derivation --------------------------------------------------------------------


def test_schema_maps_scalars_literals_lists_and_marks_required() -> None:
    def f(
        text: str,
        count: int,
        ratio: float,
        flag: bool,
        mode: Literal["fast", "slow"],
        level: Literal[1, 2, 3],
        tags: list[str],
        matrix: list[list[float]],
        labels: dict[str, int],
    ) -> None: ...

    schema = parameters_from_signature(f)
    assert schema == {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "count": {"type": "integer"},
            "ratio": {"type": "number"},
            "flag": {"type": "boolean"},
            "mode": {"type": "string", "enum": ["fast", "slow"]},
            "level": {"type": "integer", "enum": [1, 2, 3]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            "labels": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
        "required": ["text", "count", "ratio", "flag", "mode", "level", "tags", "matrix", "labels"],
        "additionalProperties": False,
    }


def test_optional_and_defaulted_parameters_are_not_required() -> None:
    def f(
        a: str,
        b: str | None,
        c: int = 3,
        d: Literal["x", "y"] | None = None,
        e: list[int] | None = None,
        when: date = date(2026, 1, 1),
    ) -> None: ...

    with pytest.raises(TypeError, match="'when'"):  # date is not a supported hint
        parameters_from_signature(f)

    def g(
        a: str,
        b: str | None,
        c: int = 3,
        d: Literal["x", "y"] | None = None,
        e: list[int] | None = None,
    ) -> None: ...

    schema = parameters_from_signature(g)
    assert schema["required"] == ["a"]
    props = schema["properties"]
    assert props["b"] == {"type": ["string", "null"]}
    assert props["c"] == {"type": "integer", "default": 3}
    assert props["d"] == {"type": ["string", "null"], "enum": ["x", "y", None], "default": None}
    assert props["e"] == {"type": ["array", "null"], "items": {"type": "integer"}, "default": None}


def test_descriptions_come_from_annotated_and_the_args_section() -> None:
    def f(
        city: Annotated[str, "The city"],
        days: Annotated[int, "How many days", {"minimum": 1, "maximum": 14}],
        unit: str = "C",
        note: str = "",
    ) -> None:
        """Forecast.

        Args:
            city: ignored, Annotated wins.
            unit (str): C or F,
                as a letter.
        """

    props = parameters_from_signature(f)["properties"]
    assert props["city"] == {"type": "string", "description": "The city"}
    assert props["days"] == {
        "type": "integer",
        "description": "How many days",
        "minimum": 1,
        "maximum": 14,
    }
    assert props["unit"]["description"] == "C or F, as a letter."
    assert "description" not in props["note"]


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("def f(x): ...", "parameter 'x' has no type hint"),
        ("def f(x: set[int]): ...", "parameter 'x': unsupported type hint"),
        ("def f(x: int | str): ...", "parameter 'x': unsupported union"),
        ("def f(x: list): ...", "parameter 'x': bare list"),
        ("def f(x: object): ...", "parameter 'x': unsupported type hint object"),
        ("def f(*args: int): ...", "parameter 'args' must be an ordinary named parameter"),
        ("def f(x: int, /): ...", "parameter 'x' must be an ordinary named parameter"),
        ("def f(x: 'Missing'): ...", "cannot resolve its type hints"),
    ],
)
def test_unsupported_hints_fail_at_decoration_naming_the_parameter(
    reg: ToolRegistry, source: str, fragment: str
) -> None:
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    with pytest.raises(TypeError, match="tool function 'f'") as info:
        reg.tool(namespace["f"])
    assert fragment in str(info.value)
    assert "f" not in reg


def test_description_is_the_docstrings_first_paragraph(weather: ToolSpec) -> None:
    assert weather.description == "Get the weather forecast for a city."
    assert weather.parameters["required"] == ["city"]
    assert weather.parameters["additionalProperties"] is False


def test_explicit_options_override_what_is_derived(reg: ToolRegistry) -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}

    @reg.tool(
        name="search-docs",
        description="Search the docs.",
        parameters=schema,
        timeout=3,
        retries=2,
        idempotent=False,
        queue="slow-tools",
    )
    def search(**kwargs: Any) -> str:
        return kwargs["q"]

    spec = reg.get("search-docs")
    assert (spec.name, spec.description, spec.parameters) == (
        "search-docs",
        "Search the docs.",
        schema,
    )
    assert (spec.timeout, spec.retries, spec.idempotent, spec.queue) == (
        3.0,
        2,
        False,
        "slow-tools",
    )
    assert search.tool_spec is spec  # type: ignore[attr-defined]
    assert search(q="x") == "x"  # the decorated function is returned unchanged


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "has space"}, "tool name 'has space' is invalid"),
        ({"name": "x" * 65}, "is invalid"),
        ({"parameters": {"type": "array"}}, "must be a schema of type 'object'"),
        ({"parameters": {"type": "object", "properties": 3}}, "invalid parameters schema"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"retries": -1}, "retries must be >= 0"),
    ],
)
def test_bad_tool_options_are_refused(
    reg: ToolRegistry, options: dict[str, Any], message: str
) -> None:
    def f(x: int) -> int:
        return x

    with pytest.raises(ValueError, match=message):
        reg.tool(**options)(f)


def test_spec_is_frozen_and_describes_itself(weather: ToolSpec) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        weather.timeout = 5  # type: ignore[misc]
    assert weather.describe() == {
        "name": "get_weather",
        "description": "Get the weather forecast for a city.",
        "parameters": weather.parameters,
        "timeout": 2.0,
        "retries": 1,
        "idempotent": True,
        "queue": "tools",
        "isolation": None,
        "requires_approval": False,
    }
    json.dumps(weather.describe())  # plain JSON data
    assert hash(weather) == hash(weather)


# Registry -----------------------------------------------------------------------------


def test_duplicate_names_are_refused_but_the_same_function_may_register_again(
    reg: ToolRegistry, weather: ToolSpec
) -> None:
    reg.register(weather)  # same function: fine (module imported twice)

    def get_weather(city: str) -> str:
        return city

    with pytest.raises(ValueError, match="'get_weather' is already registered"):
        reg.tool(get_weather)
    assert reg.get("get_weather") is weather


def test_unknown_tool_names_the_tool_and_lists_the_available_ones(
    reg: ToolRegistry, weather: ToolSpec
) -> None:
    with pytest.raises(ToolError) as info:
        reg.get("get_wether")
    assert info.value.code == "unknown_tool"
    assert str(info.value) == "unknown tool 'get_wether'; available tools: get_weather"
    with pytest.raises(ToolError, match="none: set RUNQ_TOOL_MODULES"):
        ToolRegistry().get("anything")


def test_names_specs_and_describe_are_sorted(reg: ToolRegistry) -> None:
    for name in ("zeta", "alpha", "mid"):
        reg.register(ToolSpec.from_function(lambda: None, name=name, description=name))
    assert reg.names() == ["alpha", "mid", "zeta"]
    assert [spec.name for spec in reg.specs()] == ["alpha", "mid", "zeta"]
    assert [entry["name"] for entry in reg.describe()] == ["alpha", "mid", "zeta"]
    assert set(reg.describe()[0]) == {
        "name",
        "description",
        "parameters",
        "timeout",
        "retries",
        "idempotent",
        "queue",
        "isolation",
        "requires_approval",
    }
    assert len(reg) == 3 and "mid" in reg and "nope" not in reg
    assert reg.unregister("mid") is not None and "mid" not in reg


def test_openai_tools_responses_flavor_is_flat(reg: ToolRegistry, weather: ToolSpec) -> None:
    assert reg.openai_tools(["get_weather"], "responses") == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Get the weather forecast for a city.",
            "parameters": weather.parameters,
            "strict": False,
        }
    ]


@pytest.mark.parametrize("flavor", ["chat", "assistants"])
def test_openai_tools_chat_and_assistants_nest_the_function(
    reg: ToolRegistry, weather: ToolSpec, flavor: str
) -> None:
    assert reg.openai_tools(["get_weather"], flavor) == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the weather forecast for a city.",
                "parameters": weather.parameters,
            },
        }
    ]


def test_openai_tools_all_by_default_once_each_and_unknown_names_refused(
    reg: ToolRegistry, weather: ToolSpec
) -> None:
    assert len(reg.openai_tools(None)) == 1
    assert len(reg.openai_tools(["get_weather", "get_weather"])) == 1
    with pytest.raises(ToolError) as info:
        reg.openai_tools(["get_weather", "nope", "other"], "chat")
    assert info.value.code == "unknown_tool"
    assert "unknown tools 'nope', 'other'" in str(info.value)
    with pytest.raises(ValueError, match="unknown tools flavor 'completions'"):
        reg.openai_tools(["get_weather"], "completions")


# Arguments ----------------------------------------------------------------------------


def test_parse_arguments_decodes_and_validates(reg: ToolRegistry, weather: ToolSpec) -> None:
    assert reg.parse_arguments("get_weather", '{"city": "Oslo", "days": 3}') == {
        "city": "Oslo",
        "days": 3,
    }
    assert reg.parse_arguments("get_weather", {"city": "Oslo"}) == {"city": "Oslo"}


def test_invalid_json_reports_the_position(reg: ToolRegistry, weather: ToolSpec) -> None:
    with pytest.raises(ToolError) as info:
        reg.parse_arguments("get_weather", '{"city": "Oslo",}')
    assert info.value.code == "invalid_json"
    assert "not valid JSON" in str(info.value)
    assert "line 1 column 17 (char 16)" in str(info.value)
    with pytest.raises(ToolError, match="NaN is not valid JSON") as info:
        reg.parse_arguments("get_weather", '{"city": "Oslo", "days": NaN}')
    assert info.value.code == "invalid_json"


@pytest.mark.parametrize(("raw", "kind"), [("[1, 2]", "an array"), ('"Oslo"', "a string")])
def test_arguments_must_be_an_object(
    reg: ToolRegistry, weather: ToolSpec, raw: str, kind: str
) -> None:
    with pytest.raises(ToolError) as info:
        reg.parse_arguments("get_weather", raw)
    assert info.value.code == "invalid_arguments"
    assert str(info.value) == f"arguments for tool 'get_weather' must be a JSON object, got {kind}"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"city": 42}', "arguments.city: 42 is not of type 'string' (rule: type)"),
        ("{}", "arguments: 'city' is a required property (rule: required)"),
        (
            '{"city": "Oslo", "country": "NO"}',
            "arguments: Additional properties are not allowed ('country' was unexpected) "
            "(rule: additionalProperties)",
        ),
        (
            '{"city": "Oslo", "unit": "kelvin"}',
            "arguments.unit: 'kelvin' is not one of ['celsius', 'fahrenheit'] (rule: enum)",
        ),
        ('{"city": "Oslo", "days": 1.5}', "arguments.days: 1.5 is not of type 'integer'"),
    ],
)
def test_schema_violations_name_the_field_and_the_rule(
    reg: ToolRegistry, weather: ToolSpec, raw: str, expected: str
) -> None:
    with pytest.raises(ToolError) as info:
        reg.parse_arguments("get_weather", raw)
    assert info.value.code == "invalid_arguments"
    assert str(info.value).startswith("invalid arguments for tool 'get_weather': ")
    assert expected in str(info.value)


def test_all_violations_are_listed_most_relevant_first(reg: ToolRegistry) -> None:
    @reg.tool
    def tag(items: list[int], label: str) -> None:
        """Tag items."""

    with pytest.raises(ToolError) as info:
        reg.parse_arguments("tag", '{"items": [1, "two", 3, "four"]}')
    problems = str(info.value).split(": ", 1)[1].split("; ")
    assert problems == [
        "arguments: 'label' is a required property (rule: required)",
        "arguments.items[1]: 'two' is not of type 'integer' (rule: type)",
        "arguments.items[3]: 'four' is not of type 'integer' (rule: type)",
    ]


def test_empty_arguments_mean_no_arguments(reg: ToolRegistry) -> None:
    @reg.tool
    def ping() -> str:
        """Answer pong."""
        return "pong"

    assert reg.parse_arguments("ping", "") == {}
    assert reg.parse_arguments("ping", None) == {}
    assert reg.execute("ping", "  ") == "pong"


def test_parse_arguments_of_an_unknown_tool(reg: ToolRegistry) -> None:
    with pytest.raises(ToolError) as info:
        reg.parse_arguments("nope", "{}")
    assert info.value.code == "unknown_tool"


# Execution ----------------------------------------------------------------------------


def test_execute_returns_strings_as_is_and_other_values_as_sorted_json(
    reg: ToolRegistry, weather: ToolSpec
) -> None:
    @reg.tool
    def echo(text: str) -> str:
        """Echo."""
        return text

    @reg.tool
    def when() -> dict[str, Any]:
        """A date and some non-ASCII text."""
        return {"z": "Zürich", "a": date(2026, 11, 26)}

    assert reg.execute("echo", '{"text": "plain text"}') == "plain text"
    assert (
        reg.execute("get_weather", '{"city": "Oslo"}')
        == '{"city": "Oslo", "days": 1, "unit": "celsius"}'
    )
    assert reg.execute("when", {}) == '{"a": "2026-11-26", "z": "Zürich"}'


def test_execute_validates_dict_arguments_too(reg: ToolRegistry, weather: ToolSpec) -> None:
    with pytest.raises(ToolError) as info:
        reg.execute("get_weather", {"city": "Oslo", "days": "3"})
    assert info.value.code == "invalid_arguments"


def test_a_tool_that_raises_becomes_tool_raised(reg: ToolRegistry) -> None:
    @reg.tool
    def divide(a: float, b: float) -> float:
        """Divide."""
        if b == 0:
            raise ValueError("b must not be zero")
        return a / b

    with pytest.raises(ToolError) as info:
        reg.execute("divide", {"a": 1, "b": 0})
    assert info.value.code == "tool_raised"
    assert str(info.value) == "tool 'divide' raised ValueError: b must not be zero"
    assert isinstance(info.value.__cause__, ValueError)


def test_a_tool_error_from_the_tool_keeps_its_code(reg: ToolRegistry) -> None:
    @reg.tool
    def find(key: str) -> str:
        """Find."""
        raise ToolError(f"no record {key!r}", code="not_found")

    with pytest.raises(ToolError) as info:
        reg.execute("find", {"key": "k"})
    assert (info.value.code, str(info.value)) == ("not_found", "no record 'k'")


def test_a_slow_tool_times_out_without_waiting_for_it(reg: ToolRegistry) -> None:
    release = threading.Event()
    finished = threading.Event()

    @reg.tool(timeout=0.2)
    def hang() -> str:
        """Wait until released."""
        release.wait(30)
        finished.set()
        return "late"

    started = time.monotonic()
    with pytest.raises(ToolError) as info:
        reg.execute("hang", {})
    elapsed = time.monotonic() - started
    assert info.value.code == "tool_timeout"
    assert str(info.value) == "tool 'hang' timed out after 0.2 s"
    assert 0.2 <= elapsed < 2.0
    assert not finished.is_set()  # abandoned, still running
    release.set()
    assert finished.wait(5)


def test_optional_parameters_without_default_receive_none(reg: ToolRegistry) -> None:
    @reg.tool
    def greet(name: str | None) -> str:
        """Greet."""
        return f"hello {name or 'stranger'}"

    assert reg.execute("greet", {}) == "hello stranger"
    assert reg.execute("greet", {"name": None}) == "hello stranger"
    assert reg.execute("greet", {"name": "Ada"}) == "hello Ada"


def test_async_tools_are_awaited(reg: ToolRegistry) -> None:
    @reg.tool
    async def double(x: int) -> int:
        """Double."""
        return 2 * x

    assert reg.execute("double", {"x": 21}) == "42"


def test_tools_see_the_callers_context_variables(reg: ToolRegistry) -> None:
    job_id: contextvars.ContextVar[str] = contextvars.ContextVar("job_id", default="none")

    @reg.tool
    def whoami() -> str:
        """Report the job id bound by the caller."""
        return job_id.get()

    token = job_id.set("job-123")
    try:
        assert reg.execute("whoami", {}) == "job-123"
    finally:
        job_id.reset(token)


def test_unserializable_output_is_a_tool_error(reg: ToolRegistry) -> None:
    @reg.tool
    def loop() -> list[Any]:
        """Return a list that contains itself."""
        data: list[Any] = []
        data.append(data)
        return data

    with pytest.raises(ToolError) as info:
        reg.execute("loop", {})
    assert info.value.code == "invalid_output"


def test_error_output_is_the_json_the_model_receives() -> None:
    err = ToolError("tool 'x' raised ValueError: ünïcode", code="tool_raised")
    assert json.loads(error_output(err)) == {
        "error": {"code": "tool_raised", "message": "tool 'x' raised ValueError: ünïcode"}
    }
    assert "ünïcode" in error_output(err)


# The default registry and module loading ---------------------------------------------


@pytest.fixture
def tool_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WriteModule]:
    """Write a module under a unique name; forget it and its tools afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written: list[str] = []

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(source)
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)
        for spec in registry.specs():
            if spec.func.__module__ == name:
                registry.unregister(spec.name)


def test_the_tool_decorator_registers_in_the_default_registry() -> None:
    @tool(name="test_tools_default_registry")
    def probe(x: int) -> int:
        """Probe."""
        return x

    try:
        assert registry.get("test_tools_default_registry").func is probe
        assert registry.execute("test_tools_default_registry", '{"x": 7}') == "7"
    finally:
        registry.unregister("test_tools_default_registry")


def test_load_tool_modules_imports_and_registers(tool_module: WriteModule) -> None:
    source = (
        "from runq.runs.tools import tool\n\n"
        "@tool\n"
        "def test_loaded_add(a: int, b: int) -> int:\n"
        '    """Add two integers."""\n'
        "    return a + b\n"
    )
    module = tool_module("runq_test_tools_ok", source)
    private = ToolRegistry()
    assert load_tool_modules([module], registry=private) == ["test_loaded_add"]
    assert private.execute("test_loaded_add", '{"a": 2, "b": 3}') == "5"
    assert "test_loaded_add" in registry
    # Loading again (already imported) is harmless and still reports the tools.
    assert load_tool_modules(f" {module} ,") == ["test_loaded_add"]


def test_a_missing_tool_module_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_tool_modules(["examples.no_such_tools"])
    message = str(info.value)
    assert "RUNQ_TOOL_MODULES" in message
    assert "'examples.no_such_tools'" in message


def test_a_tool_module_that_fails_to_import_is_a_configuration_error(
    tool_module: WriteModule,
) -> None:
    broken = tool_module(
        "runq_test_tools_broken",
        "from runq.runs.tools import tool\n\n@tool\ndef bad(x: set[int]) -> None:\n    pass\n",
    )
    with pytest.raises(ConfigurationError) as info:
        load_tool_modules([broken])
    message = str(info.value)
    assert "RUNQ_TOOL_MODULES" in message and "'runq_test_tools_broken'" in message
    assert "TypeError" in message and "parameter 'x'" in message
    failing = tool_module("runq_test_tools_raises", "raise RuntimeError('no database')\n")
    with pytest.raises(ConfigurationError, match="RuntimeError: no database"):
        load_tool_modules([failing])
