"""Hosted tools: sorted from function tools, checked before enqueueing, refused by a
backend that cannot run them (naming both), mapped per backend; MCP servers carry no
credential; a run's hosted tool calls and produced files are read from its output."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from runq.errors import ConfigurationError, InvalidJobError
from runq.producers.cli import job_options
from runq.producers.cli.parser import build_parser
from runq.producers.client.sync import _sorted_tools
from runq.runs import hosted_tools
from runq.runs.backends import BackendFactory
from runq.runs.backends.responses import ResponsesBackend, normalize
from runq.runs.chains import Link
from runq.runs.job import Job, JobSpec
from runq.runs.tools import ToolRegistry

MCP = {"type": "mcp", "server_label": "deepwiki", "server_url": "https://mcp.deepwiki.com/mcp",
       "allowed_tools": ["ask_question"], "require_approval": "never"}  # fmt: skip
FILE = {"name": "sales.csv", "bytes": 3, "content_type": "text/csv", "sha256": "a" * 64}


def spec(**options: Any) -> JobSpec:
    return JobSpec(input="Plot monthly sales", **options)


def test_split_sorts_function_tools_hosted_tools_and_vector_stores() -> None:
    names, hosted, stores = hosted_tools.split(
        ["calculator", "code_interpreter", "web_search", MCP,
         {"type": "file_search", "vector_store_ids": ["vs_1"]}]
    )  # fmt: skip
    assert names == ["calculator"]
    assert hosted == [{"type": "code_interpreter"}, {"type": "web_search"}, MCP]
    assert stores == ["vs_1"]


def test_a_bare_file_search_says_it_needs_vector_stores() -> None:
    with pytest.raises(InvalidJobError, match="vector_store_ids"):
        hosted_tools.split(["file_search"])


def test_the_client_merges_tools_into_the_spec_options() -> None:
    merged = _sorted_tools({"tools": ["calc", "code_interpreter"], "hosted_tools": [MCP]})
    assert merged["tools"] == ["calc"]
    assert merged["hosted_tools"] == [MCP, {"type": "code_interpreter"}]
    assert merged["vector_store_ids"] is None


@pytest.mark.parametrize(
    ("backend", "tool", "why"),
    [
        ("chat", {"type": "code_interpreter"}, "Chat Completions runs no hosted tools"),
        ("chat", {"type": "web_search"}, "Chat Completions runs no hosted tools"),
        ("assistants", {"type": "web_search"}, "only the code interpreter"),
        ("assistants", MCP, "only the code interpreter"),
    ],
)
def test_a_backend_refuses_a_hosted_tool_it_cannot_run(
    backend: str, tool: dict[str, Any], why: str
) -> None:
    kind = "web_search" if tool["type"] == "web_search" else tool["type"]
    with pytest.raises(InvalidJobError) as err:
        spec(backend=backend, hosted_tools=[tool]).validate()
    assert f"the {backend} backend cannot run the hosted tool {kind}" in str(err.value)
    assert why in str(err.value)


def test_responses_runs_every_hosted_tool_and_assistants_the_code_interpreter() -> None:
    spec(hosted_tools=[{"type": "code_interpreter"}, {"type": "web_search"}, MCP]).validate()
    spec(backend="assistants", hosted_tools=[{"type": "code_interpreter"}], files=[FILE]).validate()


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        ({**MCP, "headers": {"Authorization": "Bearer x"}}, "no credential"),
        ({**MCP, "authorization": "tok"}, "no OAuth token"),
        ({**MCP, "connector_id": "connector_gmail"}, "OAuth token"),
        ({**MCP, "server_url": "file:///etc/passwd"}, "http(s) URL"),
        ({**MCP, "server_label": "has space"}, "server_label"),
        ({**MCP, "allowed_tools": "ask_question"}, "list of tool names"),
        ({**MCP, "require_approval": "sometimes"}, "require_approval"),
        ({**MCP, "require_approval": {"never": {"tool_names": ["a"]}}}, None),
        ({**MCP, "extra": 1}, "unknown key"),
        ({"type": "code_interpreter", "container": "nope"}, "cntr_"),
        ({"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "2g"}},
         "memory_limit"),
        ({"type": "web_search", "search_context_size": "huge"}, "search_context_size"),
        ({"type": "image_generation"}, "unknown hosted tool type"),
    ],
)  # fmt: skip
def test_each_hosted_tool_is_checked(tool: dict[str, Any], message: str | None) -> None:
    if message is None:
        spec(hosted_tools=[tool]).validate()
        return
    with pytest.raises(InvalidJobError, match=message.replace("(", r"\(").replace(")", r"\)")):
        spec(hosted_tools=[tool]).validate()


def test_two_mcp_servers_need_two_labels() -> None:
    with pytest.raises(InvalidJobError, match="used twice"):
        spec(hosted_tools=[MCP, dict(MCP)]).validate()


def test_files_need_a_code_interpreter_and_an_auto_container() -> None:
    with pytest.raises(InvalidJobError, match="add the code_interpreter tool"):
        spec(files=[FILE]).validate()
    explicit = {"type": "code_interpreter", "container": "cntr_abc"}
    with pytest.raises(InvalidJobError, match="auto container"):
        spec(hosted_tools=[explicit], files=[FILE]).validate()
    with pytest.raises(InvalidJobError, match="staged file"):
        spec(hosted_tools=[{"type": "code_interpreter"}], files=[{"name": "../x"}]).validate()


def test_responses_request_passes_tools_through_with_the_uploaded_files() -> None:
    job = Job.new(spec(hosted_tools=[{"type": "code_interpreter"}, MCP], files=[FILE]))
    job.handle["input_file_ids"] = "file_1,file_2"
    params = ResponsesBackend(client=None)._common(job)  # type: ignore[arg-type]
    container = {"type": "auto", "file_ids": ["file_1", "file_2"]}
    assert params["tools"] == [{"type": "code_interpreter", "container": container}, MCP]
    assert params["include"] == ["code_interpreter_call.outputs"]


def test_an_mcp_server_gets_nothing_but_what_the_job_gave() -> None:
    """No header, key or variable of the worker is added to a server the backend calls."""
    (sent,) = hosted_tools.responses_tools([MCP], [])
    assert sent == MCP and not {"headers", "authorization"} & set(sent)


def test_a_chain_link_on_chat_is_unusable_for_a_job_with_hosted_tools() -> None:
    factory = BackendFactory(base_url="http://127.0.0.1:9", api_key="k", timeout=1,
                             registry=ToolRegistry())  # fmt: skip
    job = Job.new(spec(hosted_tools=[{"type": "code_interpreter"}]))
    link = Link(backend="chat", model="m")
    with pytest.raises(ConfigurationError, match="cannot run the hosted tool code_interpreter"):
        factory(job, link)


def test_a_response_lists_its_hosted_calls_and_cited_files() -> None:
    response = {
        "id": "resp_1",
        "status": "completed",
        "output": [
            {"type": "code_interpreter_call", "id": "ci_1", "status": "completed",
             "container_id": "cntr_1", "code": "print(1)",
             "outputs": [{"type": "logs", "logs": "1\n"},
                         {"type": "image", "url": "data:image/png;base64," + "A" * 5000}]},
            {"type": "web_search_call", "id": "ws_1", "status": "failed",
             "action": {"type": "search", "query": "q"}},
            {"type": "mcp_call", "id": "mcp_1", "server_label": "deepwiki", "name": "ask",
             "arguments": "{}", "output": "42", "status": "completed"},
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "See chart.png", "annotations": [
                    {"type": "container_file_citation", "container_id": "cntr_1",
                     "file_id": "cfile_1", "filename": "chart.png", "start_index": 4,
                     "end_index": 13}]}]},
        ],
    }  # fmt: skip
    state = normalize(response)
    assert state.output_text == "See chart.png"
    kinds = [c["type"] for c in state.hosted_calls]
    assert kinds == ["code_interpreter_call", "web_search_call", "mcp_call"]
    code = state.hosted_calls[0]
    assert code["outputs"][0] == {"type": "logs", "logs": "1\n"}
    assert code["outputs"][1] == {"type": "image", "url": None, "url_chars": 5022}
    assert state.hosted_calls[1]["action"] == {"type": "search", "query": "q"}
    assert state.hosted_calls[2]["output"] == "42"
    assert state.file_refs == [
        {"name": "chart.png", "file_id": "cfile_1", "container_id": "cntr_1"}
    ]


def test_submit_flags_give_hosted_tools_and_files() -> None:
    args = build_parser().parse_args([
        "submit", "Plot", "--tool", "code_interpreter", "--file", "a.csv", "--file", "b.csv",
        "--mcp", "wiki=https://mcp.example/sse,allowed=ask|read,approval=never",
    ])  # fmt: skip
    options = job_options.options(args)
    assert options["files"] == ["a.csv", "b.csv"]
    assert options["hosted_tools"] == [{
        "type": "mcp", "server_label": "wiki", "server_url": "https://mcp.example/sse",
        "allowed_tools": ["ask", "read"], "require_approval": "never",
    }]  # fmt: skip
    assert args.tool == ["code_interpreter"]


@pytest.mark.parametrize("text", ["nourl", "=https://x", "a=https://x,colour=red"])
def test_a_bad_mcp_flag_says_its_shape(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"LABEL=URL|unknown part"):
        job_options.mcp_server(text)
