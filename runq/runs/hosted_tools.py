"""Hosted tools: the tools a backend runs itself (code interpreter, web search, remote MCP
servers), as opposed to the function tools runq's own workers run.

A producer names them among a job's tools (`tools=["code_interpreter", {"type": "mcp",
...}]`); `split` separates them from function tool names, `check` validates them before
anything is enqueued, and each backend maps them to its own request (`responses_tools`,
`assistants_tools`). A backend that cannot run a hosted tool refuses the job at submit,
naming the backend and the tool (`refuse_unsupported`): Chat Completions runs none, and
Assistants only the code interpreter (file search keeps its own path, `vector_store_ids`).

Security: an `mcp` tool's `server_url` is called by the backend, not by runq's worker,
and a job carries no credential for it. A job record is plain JSON in Redis that every
producer reads, so `headers`, `authorization` and `connector_id` (which needs an OAuth
token) are refused, and runq never attaches a header, key or environment variable of
the worker to an MCP server: the URL goes to the backend exactly as the job gave it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from runq.errors import InvalidJobError

CODE_INTERPRETER = "code_interpreter"
WEB_SEARCH = "web_search"
MCP = "mcp"
FILE_SEARCH = "file_search"
WEB_SEARCH_TYPES = ("web_search", "web_search_2025_08_26", "web_search_preview")
HOSTED = (CODE_INTERPRETER, WEB_SEARCH, MCP)
# Names a job may give as plain strings (`--tool code_interpreter`).
NAMED = {CODE_INTERPRETER: {"type": CODE_INTERPRETER}, WEB_SEARCH: {"type": WEB_SEARCH}}
MAX_HOSTED = 16
MAX_URL_CHARS = 2048
LABEL = re.compile(r"[A-Za-z0-9_-]{1,64}")
CONTAINER_ID = re.compile(r"cntr_[A-Za-z0-9_-]{1,120}")
APPROVALS = ("always", "never")
CONTEXT_SIZES = ("low", "medium", "high")
MCP_KEYS = {"type", "server_label", "server_url", "allowed_tools", "require_approval",
            "server_description"}  # fmt: skip
MCP_REFUSED = {
    "headers": "runq carries no credential for an MCP server (a job record is readable "
    "by every producer); use a server that needs none, or call it from a function tool",
    "authorization": "runq carries no OAuth token for an MCP server (a job record is "
    "readable by every producer)",
    "connector_id": "service connectors need an OAuth token, which runq does not carry",
}
WEB_SEARCH_KEYS = {"type", "search_context_size", "user_location", "filters",
                   "external_web_access"}  # fmt: skip
# What each backend can run. Responses runs every hosted tool; Assistants only the code
# interpreter (and file search through `vector_store_ids`); Chat Completions none.
SUPPORTED: dict[str, frozenset[str]] = {
    "responses": frozenset(HOSTED),
    "assistants": frozenset({CODE_INTERPRETER}),
    "chat": frozenset(),
}
WHY_NOT = {
    "assistants": "Assistants runs only the code interpreter and file search among hosted tools",
    "chat": "Chat Completions runs no hosted tools (the caller runs every tool)",
}


def split(tools: Any) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """A job's `tools` as `(function tool names, hosted tools, vector store ids)`.

    A string names a function tool, unless it is `code_interpreter` or `web_search`; an
    object is a hosted tool (`{"type": "mcp", ...}`), and `{"type": "file_search",
    "vector_store_ids": [...]}` adds to the job's vector stores.
    """
    if tools is None:
        return [], [], []
    if not isinstance(tools, list | tuple):
        raise InvalidJobError("tools", "must be a list of tool names or hosted tool objects")
    names: list[str] = []
    hosted: list[dict[str, Any]] = []
    stores: list[str] = []
    for n, tool in enumerate(tools):
        if isinstance(tool, str):
            if tool in NAMED:
                hosted.append(dict(NAMED[tool]))
            elif tool == FILE_SEARCH:
                raise InvalidJobError(
                    "tools", "file_search searches vector stores: pass vector_store_ids=[...] "
                    '(or {"type": "file_search", "vector_store_ids": [...]})',
                )  # fmt: skip
            else:
                names.append(tool)
        elif isinstance(tool, Mapping):
            if tool.get("type") == FILE_SEARCH:
                ids = tool.get("vector_store_ids")
                if set(tool) - {"type", "vector_store_ids"} or not isinstance(ids, list):
                    raise InvalidJobError(f"tools[{n}]", "file_search takes vector_store_ids only")
                stores.extend(ids)
            else:
                hosted.append(dict(tool))
        else:
            raise InvalidJobError(f"tools[{n}]", "must be a tool name or a hosted tool object")
    return names, hosted, stores


def check(hosted: Any, backend: str, files: Any) -> None:
    """Raise `InvalidJobError` naming the first hosted tool that is malformed, that the
    job's backend cannot run, or input files without a code interpreter to read them."""
    if not isinstance(hosted, list) or not all(isinstance(t, dict) for t in hosted):
        raise InvalidJobError("hosted_tools", "must be a list of hosted tool objects")
    if len(hosted) > MAX_HOSTED:
        raise InvalidJobError("hosted_tools", f"at most {MAX_HOSTED} hosted tools")
    labels: set[str] = set()
    for n, tool in enumerate(hosted):
        kind = tool.get("type")
        where = f"tools[{kind}]" if isinstance(kind, str) else f"hosted_tools[{n}]"
        if kind == CODE_INTERPRETER:
            _check_code_interpreter(where, tool, files)
        elif kind in WEB_SEARCH_TYPES:
            _check_web_search(where, tool)
        elif kind == MCP:
            _check_mcp(where, tool)
            if tool["server_label"] in labels:
                raise InvalidJobError(where, f"server_label {tool['server_label']!r} is used twice")
            labels.add(tool["server_label"])
        else:
            known = ", ".join((CODE_INTERPRETER, WEB_SEARCH, MCP))
            raise InvalidJobError(where, f"unknown hosted tool type {kind!r} (known: {known})")
    if files and not any(t.get("type") == CODE_INTERPRETER for t in hosted):
        raise InvalidJobError(
            "files", "input files are given to the code interpreter: add the code_interpreter tool"
        )
    refuse_unsupported(backend, hosted)


def _check_code_interpreter(where: str, tool: dict[str, Any], files: Any) -> None:
    if set(tool) - {"type", "container"}:
        raise InvalidJobError(where, "takes only type and container")
    container = tool.get("container", {"type": "auto"})
    if isinstance(container, str):
        if container == "auto":
            return
        if not CONTAINER_ID.fullmatch(container):
            raise InvalidJobError(where, 'container must be "auto", {"type": "auto"} or a cntr_ id')
        if files:
            raise InvalidJobError(
                where, "input files go to an auto container; with an explicit container, "
                "upload them to it yourself",
            )  # fmt: skip
        return
    if not isinstance(container, Mapping) or container.get("type") != "auto":
        raise InvalidJobError(where, 'container must be "auto", {"type": "auto"} or a cntr_ id')
    if set(container) - {"type", "memory_limit"}:
        raise InvalidJobError(where, "an auto container takes only memory_limit (runq adds "
                              "the job's files)")  # fmt: skip
    memory = container.get("memory_limit")
    if memory is not None and memory not in ("1g", "4g", "16g", "64g"):
        raise InvalidJobError(where, "memory_limit must be 1g, 4g, 16g or 64g")


def _check_web_search(where: str, tool: dict[str, Any]) -> None:
    unknown = sorted(set(tool) - WEB_SEARCH_KEYS)
    if unknown:
        raise InvalidJobError(where, f"unknown key(s) {', '.join(unknown)}")
    size = tool.get("search_context_size")
    if size is not None and size not in CONTEXT_SIZES:
        raise InvalidJobError(
            where, f"search_context_size must be one of {', '.join(CONTEXT_SIZES)}"
        )


def _check_mcp(where: str, tool: dict[str, Any]) -> None:
    for key, why in MCP_REFUSED.items():
        if key in tool:
            raise InvalidJobError(f"{where}.{key}", why)
    unknown = sorted(set(tool) - MCP_KEYS)
    if unknown:
        raise InvalidJobError(where, f"unknown key(s) {', '.join(unknown)}")
    label = tool.get("server_label")
    if not isinstance(label, str) or not LABEL.fullmatch(label):
        raise InvalidJobError(
            f"{where}.server_label", "takes 1-64 characters of A-Z, a-z, 0-9, _ and -"
        )
    url = tool.get("server_url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise InvalidJobError(f"{where}.server_url", "must be an http(s) URL")
    if len(url) > MAX_URL_CHARS or any(c.isspace() for c in url):
        raise InvalidJobError(
            f"{where}.server_url", f"must be a URL of at most {MAX_URL_CHARS} characters"
        )
    allowed = tool.get("allowed_tools")
    if allowed is not None and (
        not isinstance(allowed, list) or not all(isinstance(a, str) and a for a in allowed)
    ):
        raise InvalidJobError(f"{where}.allowed_tools", "must be a list of tool names")
    _check_approval(f"{where}.require_approval", tool.get("require_approval"))
    description = tool.get("server_description")
    if description is not None and (not isinstance(description, str) or len(description) > 1024):
        raise InvalidJobError(
            f"{where}.server_description", "must be text of up to 1024 characters"
        )


def _check_approval(where: str, value: Any) -> None:
    """`always`, `never`, or `{"always"|"never": {"tool_names": [...]}}` (passed through)."""
    if value is None or value in APPROVALS:
        return
    if isinstance(value, Mapping) and value and not set(value) - set(APPROVALS):
        for rule in value.values():
            names = rule.get("tool_names") if isinstance(rule, Mapping) else None
            if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
                raise InvalidJobError(where, 'a filter is {"tool_names": [...]}')
        return
    raise InvalidJobError(
        where, 'must be "always", "never" or {"always"|"never": {"tool_names": [...]}}'
    )


def kinds(hosted: list[dict[str, Any]]) -> list[str]:
    """The tool kinds a job asks for (`web_search_preview` counts as `web_search`)."""
    return [WEB_SEARCH if t.get("type") in WEB_SEARCH_TYPES else str(t.get("type")) for t in hosted]


def unsupported(backend: str, hosted: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """`(tool, why)` for every hosted tool `backend` cannot run."""
    can = SUPPORTED.get(backend, frozenset())
    return [(kind, WHY_NOT.get(backend, "")) for kind in kinds(hosted) if kind not in can]


def refuse_unsupported(backend: str, hosted: list[dict[str, Any]], where: str = "") -> None:
    for kind, why in unsupported(backend, hosted):
        raise InvalidJobError(
            "tools", f"the {backend} backend{where} cannot run the hosted tool {kind}: {why}; "
            "use the responses backend",
        )  # fmt: skip


def has_code_interpreter(hosted: list[dict[str, Any]]) -> bool:
    return any(t.get("type") == CODE_INTERPRETER for t in hosted)


# -- requests ----------------------------------------------------------------------------
def responses_tools(hosted: list[dict[str, Any]], file_ids: list[str]) -> list[dict[str, Any]]:
    """The Responses `tools` entries: passed through, an auto container given the job's
    uploaded input files (`container.file_ids`)."""
    tools: list[dict[str, Any]] = []
    for tool in hosted:
        if tool.get("type") == CODE_INTERPRETER:
            container = tool.get("container", {"type": "auto"})
            if container == "auto":
                container = {"type": "auto"}
            if isinstance(container, Mapping):
                container = dict(container)
                if file_ids:
                    container["file_ids"] = list(file_ids)
            tools.append({"type": CODE_INTERPRETER, "container": container})
        else:
            tools.append(dict(tool))
    return tools


def assistants_tools(hosted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The assistant's hosted tools (its files go in `tool_resources`, see the backend)."""
    return [{"type": CODE_INTERPRETER}] if has_code_interpreter(hosted) else []
