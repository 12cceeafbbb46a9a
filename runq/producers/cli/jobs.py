"""The job commands of the `runq` CLI: `submit`, `status`, `result`, `watch`, `cancel`,
`tools`; what a producer does from a shell.

`status` and `result` read a job's record over the client's quick reads (one GET), so a
command that only looks at a job never imports redis-py or Celery. `cli.parser` calls
`add_commands(subparsers)`; every handler takes the parsed arguments and returns the
exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from runq.config.settings import BACKENDS, MODES
from runq.producers.cli import option_types

if TYPE_CHECKING:
    from runq.runs.job import Job


def _client() -> Any:
    from runq.producers.client.sync import Client

    return Client()


def _record(job_id: str) -> Job:
    """A job's record in one GET over the client's quick reads: a command that only looks
    at a job starts in half the time, never importing redis-py."""
    from runq.producers.client.sync import Client
    from runq.runs import keys
    from runq.runs.store import load_record

    return load_record(job_id, Client().reads.get(keys.job(job_id)))


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _print_result(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(result)
        return
    print(f"{result['job_id']}  {result['status']}")
    if result.get("output_text"):
        print(result["output_text"])
    if result.get("error"):
        print(f"error: {result['error'].get('code')}: {result['error'].get('message')}")


def cmd_submit(args: argparse.Namespace) -> int:
    client = _client()
    handle = client.submit(
        args.text,
        backend=args.backend,
        model=args.model,
        mode=args.mode,
        tools=args.tool or None,
        instructions=args.instructions,
        deadline=args.deadline,
        continue_job=getattr(args, "continue_job", None),
        chain=args.chain,
        idempotency_key=args.idempotency_key,
    )
    if not args.wait:
        if args.json:
            _print_json({"job_id": handle.id, "status": handle.status()})
        else:
            print(handle.id)
        return 0
    result = handle.result(timeout=args.timeout)
    _print_result(result, args.json)
    return 0 if result["status"] == "succeeded" else 1


def cmd_status(args: argparse.Namespace) -> int:
    job = _record(args.job_id)
    if args.json:
        _print_json(
            {
                "job_id": job.id,
                "status": job.status,
                "step": job.step,
                "attempt": job.attempt,
                "round": job.round,
            }
        )
    else:
        print(job.status)
    return 0


def cmd_result(args: argparse.Namespace) -> int:
    if args.wait:
        result = _client().get_job(args.job_id).result(timeout=args.timeout)
    else:
        job = _record(args.job_id)
        if not job.terminal:
            print(f"job {job.id} is {job.status}; add --wait to wait for it", file=sys.stderr)
            return 1
        result = job.result()
    _print_result(result, args.json)
    return 0 if result["status"] == "succeeded" else 1


def cmd_watch(args: argparse.Namespace) -> int:
    handle = _client().get_job(args.job_id)
    for event in handle.events(timeout=args.timeout):
        if args.json:
            print(json.dumps(event.to_dict(), default=str), flush=True)
        elif event.type == "text.delta":
            print(event.data.get("delta", ""), end="", flush=True)
        else:
            shown = {k: v for k, v in event.data.items() if k not in ("type", "ts", "result")}
            print(f"\n[{event.type}] {json.dumps(shown, default=str)}", flush=True)
    print()
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel a job; a job that had already succeeded or failed is named as such, exit 1
    (its result stands: a script must not take it for cancelled)."""
    from runq.errors import JobAlreadyEndedError

    try:
        status = _client().cancel(args.job_id)
    except JobAlreadyEndedError as ended:
        print(ended)
        return 1
    if status == "cancelled":
        print(f"job {args.job_id} was already cancelled")
    else:
        print(f"cancel requested for {args.job_id} (it was {status})")
    return 0


def cmd_tools(args: argparse.Namespace) -> int:
    from runq.config.settings import get_settings
    from runq.runs.tools import load_tool_modules, registry

    load_tool_modules(get_settings().tool_modules)
    described = registry.describe()
    if args.json:
        _print_json(described)
        return 0
    for item in described:
        params = ", ".join(item["parameters"].get("properties", {}))
        print(f"{item['name']}({params})  [queue={item['queue']}, idempotent={item['idempotent']}]")
        print(f"    {item['description']}")
    return 0


def add_commands(sub: Any) -> None:
    """Add `submit`, `status`, `result`, `watch`, `cancel` and `tools` to the subcommands."""
    p = sub.add_parser("submit", help="enqueue a conversation job")
    p.add_argument("text", help="the user's message")
    p.add_argument("--backend", help=f"run protocol: {', '.join(BACKENDS)}")
    p.add_argument("--model")
    p.add_argument("--mode", help=f"{' or '.join(MODES)}")
    p.add_argument("--tool", action="append", metavar="NAME", help="a tool the model may call")
    p.add_argument("--instructions")
    p.add_argument("--deadline", type=float, help="seconds the job may take in all")
    p.add_argument(
        "--continue",
        dest="continue_job",
        metavar="JOB_ID",
        help="continue the conversation of an earlier job",
    )
    p.add_argument("--chain", help="a fallback chain named in configuration")
    p.add_argument("--idempotency-key")
    p.add_argument("--wait", action="store_true", help="wait for the result")
    p.add_argument("--timeout", type=option_types.seconds, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("status", help="print a job's status")
    p.add_argument("job_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("result", help="print a job's result")
    p.add_argument("job_id")
    p.add_argument("--wait", action="store_true")
    p.add_argument("--timeout", type=option_types.seconds, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_result)

    p = sub.add_parser("watch", help="print a job's events live")
    p.add_argument("job_id")
    p.add_argument("--timeout", type=option_types.seconds, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("cancel", help="cancel a job")
    p.add_argument("job_id")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("tools", help="list the registered tools")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tools)
