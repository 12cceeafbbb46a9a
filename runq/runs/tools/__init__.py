"""The tool registry: functions a model may call, described, checked and run by name.

    from runq.runs.tools import tool

    @tool(timeout=5)
    def convert_units(value: float, from_unit: str, to_unit: str) -> dict:
        '''Convert a quantity between units of length, mass, temperature, volume.'''

One concept per module:

- `schema`    — JSON schema and description derived from a function's hints and docstring
- `spec`      — `ToolSpec`, the immutable, checked description of one tool
- `arguments` — decoding and validating the model's `arguments` string
- `runner`    — running a tool under its timeout; its output and error text
- `registry`  — `ToolRegistry`, the default `registry`, `@tool`, `load_tool_modules`
"""

from runq.runs.tools.arguments import field_path
from runq.runs.tools.registry import FLAVORS, ToolRegistry, load_tool_modules, registry, tool
from runq.runs.tools.runner import error_output, to_output
from runq.runs.tools.schema import description_from_docstring, parameters_from_signature
from runq.runs.tools.spec import ToolSpec

__all__ = [
    "FLAVORS",
    "ToolRegistry",
    "ToolSpec",
    "description_from_docstring",
    "error_output",
    "field_path",
    "load_tool_modules",
    "parameters_from_signature",
    "registry",
    "to_output",
    "tool",
]
