"""A small MCP client over the streamable HTTP transport, for the sandbox's ``mcp`` tool.

What the ``mcp`` package's ``client/streamable_http.py`` does, reduced to what a
Responses ``mcp`` tool needs: JSON-RPC 2.0 messages POSTed to the one ``server_url``
with ``Accept: application/json, text/event-stream``; the answer is a JSON body or a
stream of server-sent events whose ``data`` lines carry JSON-RPC messages (the one
with the request's ``id`` is the answer). The session opens with ``initialize``
(protocol version :data:`PROTOCOL_VERSION`), whose HTTP answer may give an
``mcp-session-id`` header, sent back on every later request with
``mcp-protocol-version``; then ``notifications/initialized`` (answered 202), then
``tools/list`` (following ``nextCursor``) and ``tools/call``. The session is closed
with a ``DELETE`` when the server gave it an id.

Failures are :class:`McpError`, shaped as the API's ``mcp_call.error``: no HTTP answer
(refused, unreachable, timed out) or an HTTP error status is ``http_error`` (``code``:
the status, 502 when no answer came, 504 on a timeout); a JSON-RPC error or a body
that is not JSON-RPC is ``mcp_protocol_error``. Nothing here raises anything else for
what a server does, so a bad server never becomes a 500 of the sandbox.

Security: the tool's ``headers`` go to that server only - redirects are not followed
(a redirect would carry them elsewhere), and the client ignores the environment
(``trust_env=False``: no proxy, no ``.netrc`` credentials). Headers are never logged.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from types import TracebackType
from typing import Any

import httpx

PROTOCOL_VERSION = "2025-06-18"
CLIENT_INFO = {"name": "runq-sandbox", "version": "1"}
SESSION_HEADER = "mcp-session-id"
VERSION_HEADER = "mcp-protocol-version"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_LIST_PAGES = 20
PARSE_ERROR = -32700


class McpError(Exception):
    """An MCP request that failed; :meth:`as_error` is the ``mcp_call.error`` object."""

    def __init__(self, kind: str, code: int, message: str) -> None:
        super().__init__(message)
        self.kind, self.code, self.message = kind, code, message

    def as_error(self) -> dict[str, Any]:
        return {"type": self.kind, "code": self.code, "message": self.message}


def _sse_messages(text: str) -> list[Any]:
    """The JSON ``data`` of each server-sent event in ``text``."""
    messages: list[Any] = []
    data: list[str] = []
    for line in [*text.splitlines(), ""]:
        if not line:
            if data:
                with contextlib.suppress(ValueError):
                    messages.append(json.loads("\n".join(data)))
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    return messages


class McpSession:
    """One session with one MCP server; use ``async with``."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.session_id: str | None = None
        self._ids = itertools.count(1)
        self._client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False)

    async def __aenter__(self) -> McpSession:
        try:
            await self.initialize()
        except BaseException:
            await self._client.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.session_id is not None:
                await self._client.delete(self.url, headers=self._headers())
        except httpx.HTTPError:
            pass  # the server is gone: nothing to close
        finally:
            await self._client.aclose()

    def _headers(self) -> dict[str, str]:
        headers = {
            **self.headers,
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
        }
        if self.session_id is not None:
            headers[SESSION_HEADER] = self.session_id
            headers[VERSION_HEADER] = PROTOCOL_VERSION
        return headers

    async def _post(self, message: dict[str, Any]) -> httpx.Response:
        try:
            reply = await self._client.post(self.url, json=message, headers=self._headers())
        except httpx.TimeoutException as exc:
            raise McpError("http_error", 504, f"The MCP server did not answer in time "
                           f"({type(exc).__name__}).") from exc  # fmt: skip
        except httpx.HTTPError as exc:
            raise McpError("http_error", 502, f"Could not reach the MCP server "
                           f"({type(exc).__name__}: {exc}).") from exc  # fmt: skip
        if len(reply.content) > MAX_BODY_BYTES:
            raise McpError("http_error", 502, "The MCP server's answer is too large.")
        return reply

    async def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send one JSON-RPC request; its ``result``, or :class:`McpError`."""
        request_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        reply = await self._post(message)
        if method == "initialize" and reply.headers.get(SESSION_HEADER):
            self.session_id = reply.headers[SESSION_HEADER]
        answer = self._answer(reply, request_id)
        if answer is None:
            if reply.status_code >= 400:
                raise McpError("http_error", reply.status_code,
                               f"The MCP server answered HTTP {reply.status_code}.")  # fmt: skip
            raise McpError("mcp_protocol_error", PARSE_ERROR,
                           f"The MCP server gave no answer to {method}.")  # fmt: skip
        error = answer.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            raise McpError("mcp_protocol_error", code if isinstance(code, int) else 0,
                           str(error.get("message") or "error"))  # fmt: skip
        return answer.get("result")

    @staticmethod
    def _answer(reply: httpx.Response, request_id: int) -> dict[str, Any] | None:
        """The JSON-RPC answer to ``request_id`` in a JSON or event-stream body."""
        kind = reply.headers.get("content-type", "").lower()
        if kind.startswith("text/event-stream"):
            messages = _sse_messages(reply.text)
        elif kind.startswith("application/json"):
            try:
                body = reply.json()
            except ValueError:
                return None
            messages = body if isinstance(body, list) else [body]
        else:
            return None
        for message in messages:
            is_answer = isinstance(message, dict) and ("result" in message or "error" in message)
            if is_answer and message.get("id") == request_id:
                return message
        return None

    async def notify(self, method: str) -> None:
        reply = await self._post({"jsonrpc": "2.0", "method": method})
        if reply.status_code >= 400:
            status = reply.status_code
            raise McpError("http_error", status,
                           f"The MCP server answered HTTP {status} to {method}.")  # fmt: skip

    async def initialize(self) -> None:
        await self.request(
            "initialize",
            {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO},
        )
        await self.notify("notifications/initialized")

    async def list_tools(self) -> list[dict[str, Any]]:
        """Every tool the server offers (``name``, ``description``, ``inputSchema``, ...)."""
        tools: list[dict[str, Any]] = []
        cursor = None
        for _ in range(MAX_LIST_PAGES):
            result = await self.request("tools/list", {"cursor": cursor} if cursor else {})
            if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
                raise McpError("mcp_protocol_error", PARSE_ERROR,
                               "The MCP server's tools/list answer has no tools.")  # fmt: skip
            tools += [t for t in result["tools"] if isinstance(t, dict) and t.get("name")]
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return tools

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The ``tools/call`` result (``content``, ``isError``, ``structuredContent``)."""
        result = await self.request("tools/call", {"name": name, "arguments": arguments})
        if not isinstance(result, dict):
            raise McpError("mcp_protocol_error", PARSE_ERROR,
                           "The MCP server's tools/call answer is not an object.")  # fmt: skip
        return result


async def list_tools(url: str, headers: dict[str, str] | None) -> list[dict[str, Any]]:
    """Open a session, list the server's tools, close it."""
    async with McpSession(url, headers) as session:
        return await session.list_tools()


async def call_tool(
    url: str, headers: dict[str, str] | None, name: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    """Open a session, call one tool, close it."""
    async with McpSession(url, headers) as session:
        return await session.call_tool(name, arguments)
