"""The `runq` command line.

Every command that talks to Redis finds it the same way: `REDIS_URL`, else the stack a
`runq up` started from this folder. Errors print one line naming what to fix and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from runq.config.settings import BACKENDS, MODES, ConfigurationError
from runq.errors import RunqError
from runq.producers.cli import option_types

if TYPE_CHECKING:
    from runq.runs.job import Job

EXIT_USAGE = 2


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


# -- commands --------------------------------------------------------------------------
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
    handle = _client().get_job(args.job_id)
    handle.cancel()
    print(f"cancel requested for {handle.id}")
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


def cmd_worker(args: argparse.Namespace) -> int:
    from runq.config.settings import get_settings
    from runq.worker import app

    settings = get_settings()
    json_logs = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    argv = ["--quiet"] if json_logs else []  # JSON logs: no banner lines among them
    argv += [
        "worker",
        "-Q",
        args.queues,
        "--concurrency",
        str(args.concurrency),
        "--pool",
        args.pool,
        "--loglevel",
        args.loglevel,
    ]
    app.worker_main(argv)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from runq.producers.ops.up import run_up

    return run_up(
        workers=args.workers,
        concurrency=args.concurrency,
        tool_workers=args.tool_workers,
        flower=args.flower or args.flower_demo,
        flower_port=args.flower_port,
        flower_demo=args.flower_demo,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from runq.producers.ops.demo import run_demo

    return run_demo(questions_file=args.questions, latency_ms=args.latency_ms)


# -- parser ----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runq", description="Run LLM conversation jobs in the background on Celery and Redis."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    p = sub.add_parser("worker", help="run a Celery worker for the runs and tools queues")
    p.add_argument("-Q", "--queues", default="runs,tools")
    p.add_argument("-c", "--concurrency", type=option_types.positive, default=2)
    p.add_argument("--pool", default="prefork")
    p.add_argument("--loglevel", default="INFO")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("up", help="run Redis, the sandbox and a worker in the foreground")
    p.add_argument("--workers", type=option_types.positive, default=1)
    p.add_argument("-c", "--concurrency", type=option_types.positive, default=2)
    p.add_argument(
        "--tool-workers",
        type=option_types.not_negative,
        default=0,
        help="separate workers for the tools queue, so slow tools never hold the slots "
        "polls and cancels need (default 0: the workers take both queues)",
    )
    p.add_argument(
        "--flower",
        action="store_true",
        help="also run Flower (needs RUNQ_FLOWER_BASIC_AUTH=user:password)",
    )
    p.add_argument(
        "--flower-demo",
        action="store_true",
        help="run Flower without authentication, on 127.0.0.1 only",
    )
    p.add_argument("--flower-port", type=option_types.port, default=5555)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("demo", help="start the embedded stack, answer the sample questions, stop")
    p.add_argument("--questions", default=None, help="a file with one question per line")
    p.add_argument("--latency-ms", type=option_types.not_negative, default=300)
    p.set_defaults(func=cmd_demo)

    sub.add_parser("sandbox", help="run the offline OpenAI-compatible server", add_help=False)
    _add_plugin_commands(sub)
    return parser


# Commands that live in their own modules (operations, document Q&A, the gateway); each
# module exposes `add_commands(subparsers)`.
PLUGIN_COMMANDS = ("runq.producers.ops.commands", "runq.producers.ask.command")


def _add_plugin_commands(sub: Any) -> None:
    import importlib

    for name in PLUGIN_COMMANDS:
        importlib.import_module(name).add_commands(sub)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sandbox":
        from runq.sandbox.cli import main as sandbox_main

        return sandbox_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (RunqError, ConfigurationError) as exc:
        print(f"runq: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if not _redis_unreachable(exc):
            raise
        print(
            f"runq: error: cannot reach Redis ({exc}); start the stack with `runq up` in "
            "this folder, or check REDIS_URL",
            file=sys.stderr,
        )
        return EXIT_USAGE


def _redis_unreachable(exc: Exception) -> bool:
    """Is this redis-py saying the server is down, refusing us, or too slow to answer?"""
    if "redis" not in sys.modules:  # no command got as far as importing the client
        return False
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(exc, RedisConnectionError | RedisTimeoutError)
