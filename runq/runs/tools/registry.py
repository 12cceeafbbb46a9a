"""`ToolRegistry`: the tools a worker can run, by name, and the one default `registry`.

Tools are registered by importing the modules named in `RUNQ_TOOL_MODULES`: `@tool`
adds each function to the process-wide `registry` as a side effect of the import. The
producer uses the registry to describe tools to the model (`openai_tools`); the tools
task uses it to check and run a call (`parse_arguments`, `execute`). Both sides import
the same modules, so the schema the model saw is the schema its arguments are checked
against.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, TypeVar, overload

from runq.config.celery import QUEUE_TOOLS
from runq.errors import ConfigurationError, ToolError
from runq.runs.error_codes import ToolErrorCode
from runq.runs.tools.arguments import parse_arguments
from runq.runs.tools.process_runner import call_in_process
from runq.runs.tools.runner import call_with_timeout, to_output
from runq.runs.tools.schema import JSONSchema
from runq.runs.tools.spec import Isolation, ToolSpec

F = TypeVar("F", bound=Callable[..., Any])
Flavor = Literal["responses", "chat", "assistants"]
FLAVORS: tuple[str, ...] = ("responses", "chat", "assistants")


class ToolRegistry:
    """A name -> `ToolSpec` table with the operations jobs need. Thread-safe to register."""

    def __init__(self, default_isolation: Isolation = "thread") -> None:
        self._specs: dict[str, ToolSpec] = {}
        self._lock = threading.Lock()
        # For tools that do not say (`isolation=None`); the worker sets it from
        # RUNQ_TOOL_ISOLATION.
        self.default_isolation: Isolation = default_isolation

    # Registration ----------------------------------------------------------------------

    def register(self, spec: ToolSpec) -> ToolSpec:
        """Add `spec`; a second tool with the same name is an error.

        Registering the same function again is allowed (a module imported twice, or
        reloaded): the newer spec replaces the old one.
        """
        with self._lock:
            existing = self._specs.get(spec.name)
            if existing is not None and not _same_function(existing.func, spec.func):
                raise ValueError(
                    f"tool name {spec.name!r} is already registered by "
                    f"{_where(existing.func)}; {_where(spec.func)} must use another name"
                )
            self._specs[spec.name] = spec
        return spec

    def unregister(self, name: str) -> ToolSpec | None:
        """Remove and return the tool `name`, if registered (tests, hot reload)."""
        with self._lock:
            return self._specs.pop(name, None)

    @overload
    def tool(self, func: F, /) -> F: ...

    @overload
    def tool(
        self,
        func: None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: JSONSchema | None = None,
        timeout: float = 10.0,
        retries: int = 0,
        idempotent: bool = True,
        queue: str = QUEUE_TOOLS,
        isolation: Isolation | None = None,
        requires_approval: bool = False,
    ) -> Callable[[F], F]: ...

    def tool(
        self,
        func: F | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: JSONSchema | None = None,
        timeout: float = 10.0,
        retries: int = 0,
        idempotent: bool = True,
        queue: str = QUEUE_TOOLS,
        isolation: Isolation | None = None,
        requires_approval: bool = False,
    ) -> F | Callable[[F], F]:
        """Decorator registering a function as a tool; the function is returned unchanged
        (with its spec on `func.tool_spec`) so it stays directly callable and testable.
        """

        def decorate(fn: F) -> F:
            spec = ToolSpec.from_function(
                fn,
                name=name,
                description=description,
                parameters=parameters,
                timeout=timeout,
                retries=retries,
                idempotent=idempotent,
                queue=queue,
                isolation=isolation,
                requires_approval=requires_approval,
            )
            self.register(spec)
            fn.tool_spec = spec  # type: ignore[attr-defined]
            return fn

        return decorate(func) if func is not None else decorate

    # Lookup ----------------------------------------------------------------------------

    def get(self, name: str) -> ToolSpec:
        """The spec named `name`; `ToolError(code="unknown_tool")` lists the known ones."""
        try:
            return self._specs[name]
        except KeyError:
            raise ToolError(
                f"unknown tool {name!r}; available tools: {self._available()}",
                code=ToolErrorCode.UNKNOWN_TOOL,
            ) from None

    def names(self) -> list[str]:
        """Registered tool names, sorted."""
        return sorted(self._specs)

    def specs(self) -> list[ToolSpec]:
        """Registered specs, sorted by name."""
        return [self._specs[name] for name in self.names()]

    def describe(self) -> list[dict[str, Any]]:
        """Every tool as plain JSON data, sorted by name (`runq tools --json`)."""
        return [spec.describe() for spec in self.specs()]

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self.specs())

    def __len__(self) -> int:
        return len(self._specs)

    # What the model sees ---------------------------------------------------------------

    def openai_tools(
        self, names: Iterable[str] | None = None, flavor: Flavor | str = "responses"
    ) -> list[dict[str, Any]]:
        """The `tools` request field for `names` (all tools when None), in the shape the
        backend expects: Responses uses flat function tools, Chat Completions and
        Assistants nest the function under `function`. Duplicate names are sent once.
        """
        if flavor not in FLAVORS:
            raise ValueError(f"unknown tools flavor {flavor!r}; use one of {', '.join(FLAVORS)}")
        wanted = self.names() if names is None else list(dict.fromkeys(names))
        unknown = [name for name in wanted if name not in self._specs]
        if unknown:
            listed = ", ".join(repr(name) for name in unknown)
            raise ToolError(
                f"unknown tool{'s' if len(unknown) > 1 else ''} {listed}; "
                f"available tools: {self._available()}",
                code=ToolErrorCode.UNKNOWN_TOOL,
            )
        return [_openai_tool(self._specs[name], flavor) for name in wanted]

    # Running a call --------------------------------------------------------------------

    def parse_arguments(self, name: str, raw: str | dict[str, Any] | None) -> dict[str, Any]:
        """Decode and validate a call's arguments; `ToolError` with `invalid_json`,
        `invalid_arguments` or `unknown_tool` says what the model got wrong.
        """
        return parse_arguments(self.get(name), raw)

    def execute(self, name: str, arguments: str | dict[str, Any] | None) -> str:
        """Validate `arguments`, run the tool under its timeout, return its text output.

        Raises `ToolError` with code `unknown_tool`, `invalid_json`, `invalid_arguments`,
        `tool_timeout`, `tool_raised`, `invalid_output` (or the tool's own code).
        """
        spec = self.get(name)
        checked = parse_arguments(spec, arguments)
        if (spec.isolation or self.default_isolation) == "process":
            return call_in_process(spec, checked)
        return to_output(spec.name, call_with_timeout(spec, checked))

    def _available(self) -> str:
        return ", ".join(self.names()) or "(none: set RUNQ_TOOL_MODULES)"


def _openai_tool(spec: ToolSpec, flavor: str) -> dict[str, Any]:
    if flavor == "responses":
        return {
            "type": "function",
            "name": spec.name,
            "description": spec.description,
            "parameters": spec.parameters,
            "strict": False,
        }
    return {
        "type": "function",
        "function": {
            "name": spec.name,
            "description": spec.description,
            "parameters": spec.parameters,
        },
    }


def _same_function(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    return a is b or _where(a) == _where(b)


def _where(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", "?")
    return f"{module}.{getattr(func, '__qualname__', repr(func))}"


#: The process-wide registry that `@tool` and `load_tool_modules` fill.
registry = ToolRegistry()
_DEFAULT = registry  # `load_tool_modules` has a parameter of the same name


def tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: JSONSchema | None = None,
    timeout: float = 10.0,
    retries: int = 0,
    idempotent: bool = True,
    queue: str = QUEUE_TOOLS,
    isolation: Isolation | None = None,
    requires_approval: bool = False,
) -> Any:
    """Register a function as a tool of the default `registry`.

    Use bare (`@tool`) or with options (`@tool(timeout=30, idempotent=False)`). The name
    defaults to the function's name, the description to the docstring's first paragraph,
    the parameters schema to one derived from the type hints (see `runq.runs.tools.schema`).
    `isolation="process"` runs it in a process of its own that is killed at the timeout
    (`process_runner`). `requires_approval=True`: each call waits for a person's
    decision (`runq approve`, `JobHandle.approve`; see `runs.approvals`).
    """
    # mypy gives up on the overloads' unions; the decorator's own overloads type callers.
    return registry.tool(  # type: ignore[misc]
        func,  # type: ignore[arg-type]
        name=name,
        description=description,
        parameters=parameters,
        timeout=timeout,
        retries=retries,
        idempotent=idempotent,
        queue=queue,
        isolation=isolation,
        requires_approval=requires_approval,
    )


def load_tool_modules(modules: Iterable[str] | str, registry: ToolRegistry = registry) -> list[str]:
    """Import each module so its `@tool` functions register; return the tool names.

    `modules` is what `RUNQ_TOOL_MODULES` holds (a list, or a comma-separated string).
    Importing fills the default registry; when another `registry` is given, the tools
    defined in those modules (and their submodules) are copied into it as well. Any
    failure to import becomes a `ConfigurationError` naming the variable and the module.
    """
    default = _DEFAULT
    if isinstance(modules, str):
        modules = modules.split(",")
    _importable_from_working_folder()
    loaded: list[str] = []
    for module in (m.strip() for m in modules):
        if not module:
            continue
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(
                f"RUNQ_TOOL_MODULES: cannot import tool module {module!r} ({exc}); "
                "check the name and that it is importable from the worker's PYTHONPATH"
            ) from exc
        except Exception as exc:
            raise ConfigurationError(
                f"RUNQ_TOOL_MODULES: importing tool module {module!r} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        for spec in default.specs():
            if _defined_in(spec.func, module):
                if registry is not default:
                    try:
                        registry.register(spec)
                    except ValueError as exc:
                        raise ConfigurationError(f"RUNQ_TOOL_MODULES: {exc}") from exc
                loaded.append(spec.name)
    return list(dict.fromkeys(loaded))


def _importable_from_working_folder() -> None:
    """Put the working folder on `sys.path`, as `celery -A` and uvicorn do.

    `runq worker` is a console script, whose `sys.path` starts with its own bin folder:
    without this, `RUNQ_TOOL_MODULES=myapp.tools` would not import from the app's folder.
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def _defined_in(func: Callable[..., Any], module: str) -> bool:
    owner = getattr(func, "__module__", "") or ""
    return owner == module or owner.startswith(module + ".")
