"""`ToolSpec`: everything runq knows about one tool, checked once when it is defined.

A spec is immutable and built at import time, so a broken tool (bad name, a schema the
validator rejects, a type hint that cannot be described) stops the worker from starting
instead of failing the first job that calls it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from runq.config.celery import QUEUE_TOOLS
from runq.runs.tools.schema import JSONSchema, description_from_docstring, parameters_from_signature

#: How a tool runs: a thread of the worker (fast; a tool past its timeout is abandoned,
#: not stopped) or a process of its own (a few hundred ms to start; killed at the
#: timeout). None: the worker's default, `RUNQ_TOOL_ISOLATION`.
Isolation = Literal["thread", "process"]
ISOLATIONS: tuple[str, ...] = ("thread", "process")

# What OpenAI accepts as a function name.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, kw_only=True)
class ToolSpec:
    """One callable tool: its public contract (name, description, JSON schema) and the
    execution policy the tools task applies (timeout in seconds, retries after a
    retryable failure, whether running it twice is harmless, the Celery queue).
    """

    name: str
    description: str
    parameters: JSONSchema = field(hash=False)
    timeout: float = 10.0
    retries: int = 0
    idempotent: bool = True
    queue: str = QUEUE_TOOLS
    isolation: Isolation | None = None
    # A person approves each call before it runs (`runs.approvals`): refunds, emails.
    requires_approval: bool = False
    func: Callable[..., Any] = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"tool name {self.name!r} is invalid: use 1-64 letters, digits, '_' or '-'"
            )
        if not callable(self.func):
            raise TypeError(f"tool {self.name!r}: func must be callable, got {self.func!r}")
        if self.parameters.get("type") != "object":
            raise ValueError(f"tool {self.name!r}: parameters must be a schema of type 'object'")
        try:
            Draft202012Validator.check_schema(self.parameters)
        except SchemaError as exc:
            raise ValueError(
                f"tool {self.name!r}: invalid parameters schema: {exc.message}"
            ) from None
        if not self.timeout > 0:
            raise ValueError(f"tool {self.name!r}: timeout must be > 0 seconds, got {self.timeout}")
        if self.retries < 0:
            raise ValueError(f"tool {self.name!r}: retries must be >= 0, got {self.retries}")
        if not self.queue:
            raise ValueError(f"tool {self.name!r}: queue must not be empty")
        if self.isolation is not None and self.isolation not in ISOLATIONS:
            raise ValueError(
                f"tool {self.name!r}: isolation must be 'thread' or 'process', "
                f"got {self.isolation!r}"
            )

    @classmethod
    def from_function(
        cls,
        func: Callable[..., Any],
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
    ) -> ToolSpec:
        """A spec whose missing name, description and schema come from `func` itself."""
        return cls(
            name=name or func.__name__,
            description=description
            if description is not None
            else description_from_docstring(func),
            parameters=parameters if parameters is not None else parameters_from_signature(func),
            timeout=float(timeout),
            retries=int(retries),
            idempotent=bool(idempotent),
            queue=queue,
            isolation=isolation,
            requires_approval=bool(requires_approval),
            func=func,
        )

    @cached_property
    def validator(self) -> Draft202012Validator:
        """The compiled argument validator (built once per spec, reused per call)."""
        return Draft202012Validator(self.parameters)

    def describe(self) -> dict[str, Any]:
        """The spec as plain JSON data (what `runq tools --json` prints)."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "timeout": self.timeout,
            "retries": self.retries,
            "idempotent": self.idempotent,
            "queue": self.queue,
            "isolation": self.isolation,
            "requires_approval": self.requires_approval,
        }
