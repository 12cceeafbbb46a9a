"""A real MCP server for tests: the `mcp` package's MCPServer (FastMCP, renamed in mcp 2)
over streamable HTTP, served by uvicorn in a thread on 127.0.0.1.

Two tools: `add` (a + b) and `shout` (a text in capitals, `readOnlyHint`). `fail`
raises inside the tool (a tool execution error). Every request's headers are kept in
`seen_headers`, so a test can prove which headers reached the server.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

from runq.sandbox.server.serve import bind_socket


def build() -> MCPServer:
    server = MCPServer("runq-test-tools")

    @server.tool(description="Add two integers and return the sum.")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool(
        description="Repeat a text in capital letters.",
        annotations=ToolAnnotations(readOnlyHint=True),
    )
    def shout(text: str) -> str:
        return text.upper() + "!"

    @server.tool(description="Always fails.")
    def fail() -> str:
        raise ValueError("this tool always fails")

    return server


class McpTestServer:
    """`with McpTestServer() as srv:` serves the tools at `srv.url` until the block ends."""

    def __init__(self) -> None:
        self.seen_headers: list[dict[str, str]] = []
        app = build().streamable_http_app(json_response=False)
        seen = self.seen_headers

        async def recording(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                seen.append({k.decode(): v.decode() for k, v in scope["headers"]})
            await app(scope, receive, send)

        self._sock = bind_socket("127.0.0.1", 0)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        config = uvicorn.Config(recording, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> McpTestServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the MCP test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
