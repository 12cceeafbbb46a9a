"""The Responses ``mcp`` tool: the sandbox really calls the MCP servers a request names.

Before the response is planned, the route awaits :func:`for_response`, which talks to
each server with :mod:`.mcp_client` (streamable HTTP) and returns a :class:`McpTurn`:
the items to show and, when a tool was called, the model's answer. Per request:

1. **List.** Each ``mcp`` tool's server is asked for its tools, unless an earlier
   response of the ``previous_response_id`` chain listed that ``server_label`` already
   (as at the API, the list is then in the context). An ``mcp_list_tools`` item shows
   the tools ``allowed_tools`` lets through (a list of names, or ``{"tool_names",
   "read_only"}``), or ``error`` with no tools when the server could not be listed.
2. **Pick** (the deterministic model's rule): the ``sandbox_mcp`` script - a metadata
   entry, or a line ``sandbox_mcp: {...}`` in the instructions - naming ``{"name",
   "arguments", "server_label"}`` (the label may be left out with one server);
   otherwise the first listed tool, server by server, whose name appears as a word in
   the last user text, with the first JSON object of that text as its arguments
   (``{}`` when there is none). No pick: the ordinary policy answers after the lists.
3. **Approve or call.** Unless ``require_approval`` says ``never`` for that tool (the
   default is ``always``; a ``{"always"|"never": {"tool_names", "read_only"}}`` filter
   decides per tool), the response ends with an ``mcp_approval_request``. The next
   request, with ``previous_response_id`` and an ``mcp_approval_response`` input item,
   continues: approved, the tool is called; denied, the model says so. Otherwise the
   tool is called at once. Either way an ``mcp_call`` item shows ``arguments`` and
   ``output``, or ``error`` (``status: failed``): a failed connection or HTTP status
   is ``http_error``, a JSON-RPC error ``mcp_protocol_error``, a tool that reports
   ``isError`` ``mcp_tool_execution_error`` with its content.

A ``tool_choice`` of ``none`` skips all of it. Only ``http``/``https`` URLs are called,
each with its own tool's ``headers`` only.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runq.sandbox.engine import mcp_client
from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.model import Reply, Segment
from runq.sandbox.engine.state import SandboxState
from runq.sandbox.engine.transcript import turns_from_response_input

log = logging.getLogger("sandbox")
SCRIPT_KEY = "sandbox_mcp"
_SCRIPT_LINE = re.compile(r"^\s*sandbox_mcp\s*:\s*(.+)$", re.MULTILINE | re.IGNORECASE)
_LABEL = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_CHAIN = 200


@dataclass
class Server:
    label: str
    url: str
    headers: dict[str, str]
    allowed: Any  # None, a list of names, or a filter object
    approval: Any  # "always" | "never" | a filter object


def _filter_matches(rule: Any, tool: dict[str, Any]) -> bool:
    """Does a ``{"tool_names": [...], "read_only": bool}`` filter match ``tool``?"""
    if not isinstance(rule, dict):
        return False
    names = rule.get("tool_names")
    if isinstance(names, list) and tool["name"] in names:
        return True
    read_only = rule.get("read_only")
    hint = (tool.get("annotations") or {}).get("readOnlyHint")
    return isinstance(read_only, bool) and bool(hint) == read_only


def allowed(server: Server, tool: dict[str, Any]) -> bool:
    if server.allowed is None:
        return True
    if isinstance(server.allowed, list):
        return tool["name"] in server.allowed
    return _filter_matches(server.allowed, tool)


def needs_approval(server: Server, tool: dict[str, Any]) -> bool:
    rule = server.approval if server.approval is not None else "always"
    if isinstance(rule, str):
        return rule != "never"
    # Matched by "always", or by neither filter: the default is to ask.
    return not _filter_matches(rule.get("never"), tool)


def parse_servers(tools: Any) -> list[Server]:
    """The request's ``mcp`` tools, validated the way the API does (400s naming them)."""
    servers: list[Server] = []
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        if not isinstance(tool, dict) or tool.get("type") != "mcp":
            continue
        at = f"tools[{i}]"
        label = tool.get("server_label")
        if not isinstance(label, str) or not _LABEL.fullmatch(label):
            raise bad_request(f"Invalid '{at}.server_label': expected 1-64 letters, digits, "
                              "'_' or '-'.", f"{at}.server_label")  # fmt: skip
        if any(s.label == label for s in servers):
            raise bad_request(f"Duplicate server_label '{label}' in '{at}'.", f"{at}.server_label")
        url = tool.get("server_url")
        if tool.get("connector_id") is not None or tool.get("tunnel_id") is not None:
            raise bad_request(f"'{at}': the sandbox calls only a server_url (connectors and "
                              "tunnels need OpenAI's infrastructure).", at)  # fmt: skip
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise bad_request(f"Invalid '{at}.server_url': expected an http(s) URL.",
                              f"{at}.server_url")  # fmt: skip
        headers = tool.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise bad_request(f"Invalid '{at}.headers': expected an object of strings.",
                              f"{at}.headers")  # fmt: skip
        if tool.get("authorization") is not None:
            headers = {**headers, "Authorization": f"Bearer {tool['authorization']}"}
        allowed_tools = tool.get("allowed_tools")
        if allowed_tools is not None and not (
            (isinstance(allowed_tools, list) and all(isinstance(n, str) for n in allowed_tools))
            or isinstance(allowed_tools, dict)
        ):
            raise bad_request(f"Invalid '{at}.allowed_tools': expected an array of tool names "
                              "or a filter object.", f"{at}.allowed_tools")  # fmt: skip
        approval = tool.get("require_approval")
        if (
            approval is not None
            and approval not in ("always", "never")
            and not (isinstance(approval, dict) and set(approval) <= {"always", "never"})
        ):
            raise bad_request(f"Invalid '{at}.require_approval': expected 'always', 'never' or "
                              "a filter object.", f"{at}.require_approval")  # fmt: skip
        servers.append(Server(label, url, headers, allowed_tools, approval))
    return servers


def _chain(state: SandboxState, prev_id: Any) -> list[dict[str, Any]]:
    """The output items of the ``previous_response_id`` chain, newest response first."""
    items: list[dict[str, Any]] = []
    seen = 0
    while isinstance(prev_id, str) and seen < MAX_CHAIN:
        rec = state.store.responses.get(prev_id)
        if rec is None:
            break
        items += rec.output
        prev_id, seen = rec.params.get("previous_response_id"), seen + 1
    return items


def _listed_tool(item: dict[str, Any]) -> dict[str, Any]:
    return {"name": item["name"], "annotations": item.get("annotations")}


@dataclass
class McpTurn:
    """The MCP items of one response and, when the model used a tool, its answer."""

    items: list[dict[str, Any]] = field(default_factory=list)
    text: str | None = None  # None: the ordinary policy answers
    awaiting_approval: bool = False
    inner: Any = None  # what else the step did (a web search), attached after

    def merge(self, reply: Reply) -> Reply:
        """The step's reply: this turn's answer, or the ordinary one after the lists."""
        if self.text is None and not self.awaiting_approval:
            self.inner = reply.hosted
            reply.hosted = self
            return reply
        return Reply(segments=[Segment(self.text)] if self.text else [], hosted=self)

    def attach(self, items: list[dict[str, Any]], include: Any) -> None:
        """The lists first (they come before the model thinks), the call or the approval
        request before the answer (none when approval is awaited: the response ends)."""
        if self.inner is not None:
            self.inner.attach(items, include)
        if self.awaiting_approval:
            items[:] = [i for i in items if i.get("type") != "message"]
        at = next((i for i, item in enumerate(items) if item.get("type") == "message"), None)
        at = len(items) if at is None else at
        items[at:at] = [i for i in self.items if i["type"] != "mcp_list_tools"]
        items[:0] = [i for i in self.items if i["type"] == "mcp_list_tools"]


def _script(metadata: dict[str, str], instructions: str | None) -> dict[str, Any] | None:
    raw = metadata.get(SCRIPT_KEY)
    if raw is None and instructions:
        found = _SCRIPT_LINE.search(instructions)
        raw = found.group(1) if found else None
    if raw is None:
        return None
    try:
        script = json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"Invalid '{SCRIPT_KEY}': not JSON ({exc}).", "metadata") from exc
    if not isinstance(script, dict) or not isinstance(script.get("name"), str):
        raise bad_request(f"Invalid '{SCRIPT_KEY}': expected {{\"name\", \"arguments\", "
                          "\"server_label\"}.", "metadata")  # fmt: skip
    if not isinstance(script.get("arguments", {}), dict):
        raise bad_request(f"Invalid '{SCRIPT_KEY}.arguments': expected an object.", "metadata")
    return script


def _json_object(text: str) -> dict[str, Any]:
    """The first JSON object written in ``text`` ({} when there is none)."""
    decoder = json.JSONDecoder()
    for start in (m.start() for m in re.finditer(r"\{", text)):
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}


Pick = tuple[Server, str, dict[str, Any]]


def _pick(
    servers: list[Server],
    lists: dict[str, list[dict[str, Any]] | None],
    script: dict[str, Any] | None,
    user_text: str,
) -> Pick | None:
    """Which tool the model calls, by the script or by the user's words."""
    if script is not None:
        label = script.get("server_label")
        if label is None and len(servers) == 1:
            label = servers[0].label
        server = next((s for s in servers if s.label == label), None)
        if server is None:
            raise bad_request(f"Invalid '{SCRIPT_KEY}': no mcp tool has server_label "
                              f"{label!r}.", "metadata")  # fmt: skip
        listed = lists.get(server.label)
        if listed is not None and script["name"] not in [t["name"] for t in listed]:
            names = ", ".join(t["name"] for t in listed) or "none"
            raise bad_request(f"Invalid '{SCRIPT_KEY}': server '{server.label}' offers no tool "
                              f"{script['name']!r} (allowed: {names}).", "metadata")  # fmt: skip
        return server, script["name"], dict(script.get("arguments") or {})
    for server in servers:
        for tool in lists.get(server.label) or []:
            pattern = r"(?<![\w-])" + re.escape(tool["name"]) + r"(?![\w-])"
            if re.search(pattern, user_text, re.IGNORECASE):
                return server, tool["name"], _json_object(user_text)
    return None


async def _list(server: Server) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """The ``mcp_list_tools`` item, and the allowed tools (``None``: listing failed)."""
    item: dict[str, Any] = {"type": "mcp_list_tools", "id": new_id("mcpl"),
                            "server_label": server.label, "tools": []}  # fmt: skip
    try:
        tools = await mcp_client.list_tools(server.url, server.headers)
    except mcp_client.McpError as exc:
        log.info("sandbox.mcp.list_failed label=%s error=%s", server.label, exc.message)
        item["error"] = exc.message
        return item, None
    shown = [
        {"name": t["name"], "description": t.get("description"),
         "input_schema": t.get("inputSchema") or {"type": "object"},
         "annotations": t.get("annotations")}
        for t in tools
        if allowed(server, t)
    ]  # fmt: skip
    item["tools"] = shown
    return item, shown


def _output_text(result: dict[str, Any]) -> str:
    parts = []
    for part in result.get("content") or []:
        if isinstance(part, dict) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
        elif part:
            parts.append(json.dumps(part))
    if not parts and result.get("structuredContent") is not None:
        parts.append(json.dumps(result["structuredContent"]))
    return "\n".join(parts)


async def call(server: Server, name: str, arguments: dict[str, Any],
               approval_id: str | None = None) -> tuple[dict[str, Any], str]:  # fmt: skip
    """Call the tool: the ``mcp_call`` item and the sentence the model answers with."""
    item: dict[str, Any] = {
        "type": "mcp_call", "id": new_id("mcp"), "server_label": server.label, "name": name,
        "arguments": json.dumps(arguments), "output": None, "error": None,
        "status": "completed", "approval_request_id": approval_id,
    }  # fmt: skip
    try:
        result = await mcp_client.call_tool(server.url, server.headers, name, arguments)
    except mcp_client.McpError as exc:
        item.update(error=exc.as_error(), status="failed")
        log.info("sandbox.mcp.call_failed label=%s tool=%s error=%s", server.label, name,
                 exc.message)  # fmt: skip
        return item, f"The tool {name} on {server.label} failed: {exc.message}"
    if result.get("isError"):
        content = result.get("content") or []
        item.update(error={"type": "mcp_tool_execution_error", "content": content},
                    status="failed")  # fmt: skip
        return item, f"The tool {name} on {server.label} failed: {_output_text(result)}"
    item["output"] = _output_text(result)
    return item, f"Tool results: {name}: {item['output']}"


def _approvals(raw_input: Any) -> list[tuple[int, dict[str, Any]]]:
    if not isinstance(raw_input, list):
        return []
    return [(i, it) for i, it in enumerate(raw_input)
            if isinstance(it, dict) and it.get("type") == "mcp_approval_response"]  # fmt: skip


async def _continue(
    servers: list[Server], approvals: list[tuple[int, dict[str, Any]]],
    earlier: list[dict[str, Any]],
) -> McpTurn:  # fmt: skip
    """Answer the approval responses of a follow-up request."""
    requests = {it["id"]: it for it in earlier if it.get("type") == "mcp_approval_request"}
    turn = McpTurn()
    sentences = []
    for i, answer in approvals:
        at = f"input[{i}]"
        request = requests.get(answer.get("approval_request_id"))
        if request is None:
            raise bad_request(f"Invalid '{at}.approval_request_id': no mcp_approval_request "
                              f"{answer.get('approval_request_id')!r} in the previous "
                              "responses.", f"{at}.approval_request_id")  # fmt: skip
        if not isinstance(answer.get("approve"), bool):
            raise bad_request(f"Invalid '{at}.approve': expected a boolean.", f"{at}.approve")
        server = next((s for s in servers if s.label == request["server_label"]), None)
        if server is None:
            label = request["server_label"]
            raise bad_request(f"'{at}': the request's mcp tool (server_label '{label}') "
                              "is not in 'tools'.", "tools")  # fmt: skip
        name = request["name"]
        if answer["approve"]:
            item, sentence = await call(server, name, json.loads(request["arguments"]),
                                        request["id"])  # fmt: skip
            turn.items.append(item)
        else:
            reason = answer.get("reason")
            sentence = f"The call of {name} on {server.label} was not approved" + (
                f": {reason}" if isinstance(reason, str) and reason else "")  # fmt: skip
        sentences.append(sentence)
    turn.text = " ".join(sentences)
    return turn


async def for_response(
    state: SandboxState, body: dict[str, Any], check: Callable[[], object]
) -> McpTurn | None:
    """List, pick, ask or call for a Responses create that offers ``mcp`` tools
    (``check`` validates the whole body first, so a bad request calls no server)."""
    servers = parse_servers(body.get("tools"))
    if not servers:
        return None
    check()
    if body.get("tool_choice") == "none":
        return None
    earlier = _chain(state, body.get("previous_response_id"))
    approvals = _approvals(body.get("input"))
    if approvals:
        return await _continue(servers, approvals, earlier)
    turn = McpTurn()
    lists: dict[str, list[dict[str, Any]] | None] = {}
    for server in servers:
        before = next((it for it in earlier if it.get("type") == "mcp_list_tools"
                       and it.get("server_label") == server.label
                       and not it.get("error")), None)  # fmt: skip
        if before is not None:
            lists[server.label] = list(before["tools"])
            continue
        item, lists[server.label] = await _list(server)
        turn.items.append(item)
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    instructions = body.get("instructions") if isinstance(body.get("instructions"), str) else None
    turns = turns_from_response_input(body.get("input"))
    user_text = next((t.text for t in reversed(turns) if t.role == "user"), "")
    picked = _pick(servers, lists, _script(meta or {}, instructions), user_text)
    if picked is None:
        return turn
    server, name, arguments = picked
    tool = next((t for t in lists.get(server.label) or [] if t["name"] == name), {"name": name})
    if needs_approval(server, tool):
        turn.items.append({"type": "mcp_approval_request", "id": new_id("mcpr"),
                           "server_label": server.label, "name": name,
                           "arguments": json.dumps(arguments)})  # fmt: skip
        turn.awaiting_approval = True
        return turn
    item, turn.text = await call(server, name, arguments)
    turn.items.append(item)
    return turn
