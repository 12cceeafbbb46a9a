"""`runq submit`'s structured-output and model-setting flags, and the job options they
give.

Kept apart from `cli.jobs` because they are one concept — what the model is asked to
return and how — and a dozen flags. Values are checked by the job's own validation
(`JobSpec.validate`), so the shell and the Python API refuse the same things with the
same message; only `--schema`, which must be read first, is checked here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from runq.producers.cli import completion

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
SUMMARIES = ("auto", "concise", "detailed")
TIERS = ("auto", "default", "flex", "priority")
COST_TIERS = ("auto", "standard", "flex", "priority", "batch")  # runs.tiers


def schema(text: str) -> dict[str, Any]:
    """A JSON schema given inline (`{...}`) or as the path of a JSON file."""
    source = text if text.lstrip().startswith("{") else None
    if source is None:
        try:
            source = Path(text).read_text()
        except OSError as err:
            raise argparse.ArgumentTypeError(
                f"is neither inline JSON nor a readable file: {err}"
            ) from None
    try:
        value = json.loads(source)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object (a schema)")
    return value


def mcp_server(text: str) -> dict[str, Any]:
    """`--mcp LABEL=URL[,allowed=a|b][,approval=never|always]`: a remote MCP server the
    backend calls (runq sends it no credential; see `runs.hosted_tools`)."""
    head, *rest = text.split(",")
    label, sep, url = head.partition("=")
    if not sep or not label or not url:
        raise argparse.ArgumentTypeError("takes LABEL=URL[,allowed=a|b][,approval=never|always]")
    server: dict[str, Any] = {"type": "mcp", "server_label": label, "server_url": url}
    for part in rest:
        key, sep, value = part.partition("=")
        if key == "allowed" and sep:
            server["allowed_tools"] = [name for name in value.split("|") if name]
        elif key == "approval" and sep:
            server["require_approval"] = value
        else:
            raise argparse.ArgumentTypeError(f"unknown part {part!r} (allowed=a|b, approval=...)")
    return server


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("structured output and model settings",
                             "each is sent to the backend; a backend without the setting "
                             "refuses the job (default: the backend's own)")  # fmt: skip
    g.add_argument("--schema", type=schema, metavar="FILE_OR_JSON",
                   help="a JSON schema the answer must satisfy; the result's output_parsed "
                   "holds it")  # fmt: skip
    g.add_argument("--schema-name", metavar="NAME", help="the schema's name (default: output)")
    g.add_argument("--temperature", type=float, metavar="T", help="sampling temperature, 0-2")
    g.add_argument("--top-p", type=float, metavar="P", help="nucleus sampling, 0-1")
    effort = g.add_argument("--reasoning-effort", metavar="EFFORT",
                            help=f"a reasoning model's effort: {', '.join(EFFORTS)}")  # fmt: skip
    summary = g.add_argument("--reasoning-summary", metavar="KIND",
                             help=f"summarise the reasoning: {', '.join(SUMMARIES)}")  # fmt: skip
    g.add_argument("--max-output-tokens", type=int, metavar="N", help="cap on the answer")
    tier = g.add_argument("--service-tier", metavar="TIER", help=", ".join(TIERS))
    cost_tier = g.add_argument("--tier", metavar="TIER",
                               help=f"cost tier: {', '.join(COST_TIERS)} (batch and flex at "
                               "half price; auto picks by --deadline; docs/tiers.md)")  # fmt: skip
    g.add_argument("--prompt-cache-key", metavar="KEY", help="groups requests for caching")
    g.add_argument("--safety-identifier", metavar="ID", help="a hashed id of the end user")
    g.add_argument("--truncation", metavar="auto|disabled", help="Responses' truncation")
    g.add_argument("--tool-choice", metavar="auto|none|required|TOOL",
                   help="whether (or which tool) the model must call")  # fmt: skip
    g.add_argument("--parallel-tool-calls", action=argparse.BooleanOptionalAction,
                   default=None, help="allow several calls in one round")  # fmt: skip
    g.add_argument("--store", action=argparse.BooleanOptionalAction, default=None,
                   help="keep the completion at the backend (Chat)")  # fmt: skip
    g.add_argument("--include", action="append", metavar="WHAT",
                   help="extra output, e.g. reasoning.encrypted_content; repeat")  # fmt: skip
    h = p.add_argument_group(
        "hosted tools and files",
        "tools the backend runs: --tool code_interpreter or --tool web_search "
        "(responses; assistants: code_interpreter only)",
    )
    h.add_argument("--mcp", action="append", type=mcp_server,
                   metavar="LABEL=URL[,allowed=a|b][,approval=never]",
                   help="a remote MCP server the backend may call; repeat for several "
                   "(responses backend; no credential is sent)")  # fmt: skip
    h.add_argument("--file", action="append", metavar="PATH",
                   help="an input file for the code interpreter; repeat for several "
                   "(capped by RUNQ_FILE_MAX_BYTES)")  # fmt: skip
    completion.offer(effort, EFFORTS)
    completion.offer(summary, SUMMARIES)
    completion.offer(tier, TIERS)
    completion.offer(cost_tier, COST_TIERS)


def options(args: argparse.Namespace) -> dict[str, Any]:
    """The job options the flags give (None: not given, the deployment's default)."""
    reasoning = {
        key: value
        for key, value in (("effort", args.reasoning_effort), ("summary", args.reasoning_summary))
        if value is not None
    }
    choice: Any = args.tool_choice
    if choice is not None and choice not in ("auto", "none", "required"):
        choice = {"type": "function", "name": choice}
    return {
        "output_schema": args.schema,
        "output_name": args.schema_name,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "reasoning": reasoning or None,
        "max_output_tokens": args.max_output_tokens,
        "service_tier": args.service_tier,
        "tier": args.tier,
        "prompt_cache_key": args.prompt_cache_key,
        "safety_identifier": args.safety_identifier,
        "truncation": args.truncation,
        "tool_choice": choice,
        "parallel_tool_calls": args.parallel_tool_calls,
        "store": args.store,
        "include": args.include,
        "hosted_tools": args.mcp,
        "files": args.file,
    }
