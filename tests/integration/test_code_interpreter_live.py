"""The code interpreter end to end: the `runq` CLI, a real Redis, real workers and the
sandbox over HTTP. A CSV goes in with `--file`, the sandbox runs the plotting code in a
container, the job's ending step downloads the chart, and `runq files` writes it; on the
responses and assistants backends. The chat backend refuses the tool at submit; the
gateway serves a job's files to its own tenant only."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from runq.errors import InvalidJobError
from runq.producers.client.sync import Client
from runq.worker.launcher import Stack
from tests.conftest import wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SALES = ROOT / "examples" / "data" / "sales.csv"
PNG = b"\x89PNG\r\n\x1a\n"
A, B = {"Authorization": "Bearer token-a"}, {"Authorization": "Bearer token-b"}


def _cli(stack: Stack, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": str(stack.redis_url), "PYTHONPATH": str(ROOT)}
    env.pop("RUNQ_TOOL_MODULES", None)
    return subprocess.run([sys.executable, "-m", "runq.producers.cli", *args],
                          capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)  # fmt: skip


def _png_entry(result: dict[str, Any]) -> dict[str, Any]:
    pngs = [f for f in result["files"] if f.get("content_type") == "image/png"]
    assert len(pngs) == 1, result["files"]
    assert pngs[0]["stored"] and pngs[0]["name"].endswith(".png")
    return pngs[0]


@pytest.mark.parametrize("backend", ["responses", "assistants"])
def test_plot_monthly_sales_from_the_cli(stack: Stack, tmp_path: Path, backend: str) -> None:
    done = _cli(stack, tmp_path, "submit", "Plot monthly sales", "--backend", backend,
                "--tool", "code_interpreter", "--file", str(SALES), "--wait", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    png = _png_entry(result)
    assert png["bytes"] > 1000 and len(png["sha256"]) == 64
    calls = [c for c in result["hosted_tool_calls"] if c["type"] == "code_interpreter_call"]
    assert calls and "matplotlib" in calls[0]["code"] and "sales.csv" in calls[0]["code"]

    shown = _cli(stack, tmp_path, "result", result["job_id"])
    assert f"file: {png['name']} ({png['bytes']} bytes, image/png)" in shown.stdout
    assert f"runq files {result['job_id']} --out DIR" in shown.stdout

    listed = _cli(stack, tmp_path, "files", result["job_id"])
    assert listed.returncode == 0, listed.stderr
    assert png["name"] in listed.stdout and "image/png" in listed.stdout

    out = tmp_path / "out"
    written = _cli(stack, tmp_path, "files", result["job_id"], "--out", str(out))
    assert written.returncode == 0, written.stderr
    chart = out / png["name"]
    assert written.stdout.strip().splitlines() == [str(chart)]
    content = chart.read_bytes()
    assert content.startswith(PNG)
    assert hashlib.sha256(content).hexdigest() == png["sha256"] and len(content) == png["bytes"]


def test_chat_refuses_the_code_interpreter_at_submit(stack: Stack, tmp_path: Path) -> None:
    done = _cli(stack, tmp_path, "submit", "Plot monthly sales", "--backend", "chat",
                "--tool", "code_interpreter", "--file", str(SALES))  # fmt: skip
    assert done.returncode != 0
    assert "the chat backend cannot run the hosted tool code_interpreter" in done.stderr
    assert done.stdout == ""  # nothing was enqueued, so no job id


@pytest.mark.parametrize(
    ("backend", "mode"), [("responses", "poll"), ("responses", "stream"), ("assistants", "stream")]
)
def test_python_api_returns_the_chart(client: Client, backend: str, mode: str) -> None:
    handle = client.submit("Plot monthly sales", tools=["code_interpreter"], files=[SALES],
                           backend=backend, mode=mode)  # fmt: skip
    result = handle.result(timeout=90)
    assert result["status"] == "succeeded", result["error"]
    (chart,) = [f for f in handle.files() if f.content_type == "image/png"]
    assert chart.content.startswith(PNG) and chart.bytes == len(chart.content)
    assert hashlib.sha256(chart.content).hexdigest() == chart.sha256
    with pytest.raises(InvalidJobError, match="add the code_interpreter tool"):
        client.submit("Plot monthly sales", files=[SALES])


def _submit(gateway: str, body: dict[str, Any], headers: dict[str, str]) -> str:
    reply = httpx.post(f"{gateway}/v1/jobs", json=body, headers=headers, timeout=30)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["job_id"])


def _ended(gateway: str, job_id: str, headers: dict[str, str]) -> dict[str, Any] | None:
    view = httpx.get(f"{gateway}/v1/jobs/{job_id}", headers=headers, timeout=10).json()
    return view if view["status"] in ("succeeded", "failed", "cancelled") else None


def test_gateway_serves_a_jobs_files_to_its_tenant_only(gateway: str) -> None:
    upload = {"name": "sales.csv", "content_base64": base64.b64encode(SALES.read_bytes()).decode()}
    body = {"input": "Plot monthly sales", "tools": ["code_interpreter"], "files": [upload]}
    job_id = _submit(gateway, body, A)
    view = wait_for(lambda: _ended(gateway, job_id, A), timeout=90, what="the job to end")
    assert view["status"] == "succeeded", view["error"]
    png = _png_entry(view)

    listed = httpx.get(f"{gateway}/v1/jobs/{job_id}/files", headers=A, timeout=10)
    assert listed.status_code == 200
    (entry,) = [f for f in listed.json()["files"] if f["name"] == png["name"]]
    assert entry["url"] == f"/v1/jobs/{job_id}/files/{png['name']}"
    got = httpx.get(f"{gateway}{entry['url']}", headers=A, timeout=10)
    assert got.status_code == 200 and got.content.startswith(PNG)
    assert got.headers["content-type"] == "image/png"
    assert got.headers["content-disposition"].startswith("attachment")

    # Bob sees neither the list nor the file: 404, as for a job that does not exist.
    assert httpx.get(f"{gateway}/v1/jobs/{job_id}/files", headers=B, timeout=10).status_code == 404
    assert httpx.get(f"{gateway}{entry['url']}", headers=B, timeout=10).status_code == 404
    assert httpx.get(f"{gateway}{entry['url']}", timeout=10).status_code == 401
    missing = httpx.get(f"{gateway}/v1/jobs/{job_id}/files/nope.png", headers=A, timeout=10)
    assert missing.status_code == 404


def test_gateway_refuses_bad_files_and_tools_by_name(gateway: str) -> None:
    bad_b64 = {"input": "x", "tools": ["code_interpreter"],
               "files": [{"name": "a.csv", "content_base64": "not base64!"}]}  # fmt: skip
    reply = httpx.post(f"{gateway}/v1/jobs", json=bad_b64, headers=A, timeout=10)
    assert reply.status_code == 422 and "base64" in reply.text
    on_chat = {"input": "x", "backend": "chat", "tools": ["web_search"]}
    reply = httpx.post(f"{gateway}/v1/jobs", json=on_chat, headers=A, timeout=10)
    assert reply.status_code == 422 and "cannot run the hosted tool web_search" in reply.text
    leaky = {"input": "x", "tools": [{"type": "mcp", "server_label": "s",
             "server_url": "https://mcp.example/sse", "headers": {"X-Key": "k"}}]}  # fmt: skip
    reply = httpx.post(f"{gateway}/v1/jobs", json=leaky, headers=A, timeout=10)
    assert reply.status_code == 422 and "no credential" in reply.text


def test_web_search_and_mcp_jobs_list_their_calls_with_outputs(client: Client) -> None:
    """Passed through to the backend, which runs them (the sandbox searches its offline web
    and calls a real MCP server): the result lists each call with what it gave back."""
    from tests.sandbox.mcp_server import McpTestServer  # a real MCP server, in a thread

    searched = client.submit("What changed in Python 3.14?", tools=["web_search"])
    result = searched.result(timeout=60)
    assert result["status"] == "succeeded", result
    (search,) = [c for c in result["hosted_tool_calls"] if c["type"] == "web_search_call"]
    assert search["status"] == "completed"
    assert search["action"]["type"] == "search"
    assert search["action"]["query"] == "What changed in Python 3.14?"
    assert "https://docs.example.com/python/whats-new-3-14" in result["output_text"]
    with McpTestServer() as server:
        tool = {"type": "mcp", "server_label": "calc", "server_url": server.url,
                "allowed_tools": ["add"], "require_approval": "never"}  # fmt: skip
        result = client.submit('Please add {"a": 20, "b": 22}', tools=[tool]).result(timeout=60)
    assert result["status"] == "succeeded", result
    kinds = [c["type"] for c in result["hosted_tool_calls"]]
    assert kinds == ["mcp_list_tools", "mcp_call"], result["hosted_tool_calls"]
    listing, call = result["hosted_tool_calls"]
    assert listing["server_label"] == "calc" and listing["tools"] == ["add"]
    assert call["name"] == "add" and call["status"] == "completed"
    assert json.loads(call["arguments"]) == {"a": 20, "b": 22} and call["output"] == "42"
    assert "error" not in call
    assert result["output_text"] == "Tool results: add: 42"
