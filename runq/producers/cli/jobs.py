"""The job commands of the `runq` CLI: `submit`, `status`, `result`, `watch`, `cancel`,
`tools`; what a producer does from a shell.

`status` and `result` read a job's record over the client's quick reads (one GET; `status`
also one ZSCORE for when the next step is due), so a command that only looks at a job
never imports redis-py or Celery. `submit --wait` prints the job id before it waits, and
Ctrl-C stops the waiting, not the job, saying how to get the result later. `cli.parser`
calls `add_commands(subparsers)`; every handler takes the parsed arguments and returns
the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from runq.config.settings import BACKENDS, MODES, MULTITASK_STRATEGIES, Settings
from runq.producers.cli import completion, files, job_options, option_types

if TYPE_CHECKING:
    from runq.producers.client.sync import Client
    from runq.runs.job import Job

EXIT_INTERRUPTED = 130  # what a shell reports for a command stopped by Ctrl-C


def _client(doing: str = "send the request to") -> Client:
    """A client of the Redis this command works on; with none, an error that says what
    the command wanted it for (`doing`: "submit to", "read from", ...)."""
    from runq.config.settings import get_settings
    from runq.producers.client.sync import Client, require_redis_url

    settings = get_settings()
    return Client(require_redis_url(settings, doing), settings)


def _record(client: Client, job_id: str) -> Job:
    """A job's record in one GET over the client's quick reads: a command that only looks
    at a job starts in half the time, never importing redis-py."""
    from runq.runs import keys
    from runq.runs.store import load_record

    return load_record(job_id, client.reads.get(keys.job(job_id)))


def _later(job_id: str) -> str:
    return f"runq result {job_id} --wait"


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _print_result(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(result)
        return
    print(f"{result['job_id']}  {result['status']}")
    if result.get("output_text"):
        print(result["output_text"])
    for line in files.summary(result):
        print(line)
    if result.get("error"):
        print(f"error: {result['error'].get('code')}: {result['error'].get('message')}")


def cmd_submit(args: argparse.Namespace) -> int:
    client = _client("submit to")
    handle = client.submit(
        args.text,
        backend=args.backend,
        model=args.model,
        mode=args.mode,
        tools=args.tool or None,
        instructions=args.instructions,
        deadline=args.deadline,
        continue_job=getattr(args, "continue_job", None),
        conversation=getattr(args, "conversation", None),
        multitask=getattr(args, "multitask", None),
        approval_required=getattr(args, "approve_tool", None),
        chain=args.chain,
        idempotency_key=args.idempotency_key,
        **job_options.options(args),
    )
    if not args.wait:
        if args.json:
            _print_json({"job_id": handle.id, "status": handle.status()})
        else:
            print(handle.id)
        return 0
    return _wait_and_print(handle, args.timeout, args.json, show_id=True)


def _wait_and_print(
    handle: Any, timeout: float | None, as_json: bool, *, show_id: bool = False
) -> int:
    from runq.errors import JobTimeoutError

    try:
        if show_id:
            # The id first, so a wait cut short (Ctrl-C, a closed terminal) leaves it on
            # screen; with --json on stderr, so stdout stays one JSON document. Inside the
            # `try`: a Ctrl-C the moment it is printed still gets the hint below.
            print(handle.id, file=sys.stderr if as_json else sys.stdout, flush=True)
        result = handle.result(timeout=timeout)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; job {handle.id} goes on. Get its result later with: "
              f"{_later(handle.id)}", file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    except JobTimeoutError:
        print(f"job {handle.id} did not finish within {timeout:g}s; it goes on. Get its "
              f"result later with: {_later(handle.id)}", file=sys.stderr)  # fmt: skip
        return 1
    _print_result(result, as_json)
    return 0 if result["status"] == "succeeded" else 1


def cmd_status(args: argparse.Namespace) -> int:
    from runq.producers.cli import status_view

    client = _client("read from")
    job = _record(client, args.job_id)
    due_at = status_view.next_due(client.reads, job)
    if args.json:
        _print_json(status_view.as_dict(job, due_at))
    else:
        print("\n".join(status_view.lines(job, due_at)))
    return 0


def cmd_result(args: argparse.Namespace) -> int:
    client = _client("read from")
    if args.wait:
        return _wait_and_print(client.get_job(args.job_id), args.timeout, args.json)
    job = _record(client, args.job_id)
    if not job.terminal:
        print(f"job {job.id} is {job.status}; add --wait to wait for it", file=sys.stderr)
        return 1
    result = job.result()
    _print_result(result, args.json)
    return 0 if result["status"] == "succeeded" else 1


def cmd_watch(args: argparse.Namespace) -> int:
    handle = _client("read from").get_job(args.job_id)
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
    described, note = _known_tools()
    if args.json:
        _print_json(described)
    else:
        for item in described:
            params = ", ".join(item["parameters"].get("properties", {}))
            print(f"{item['name']}({params})  "
                  f"[queue={item['queue']}, idempotent={item['idempotent']}]")  # fmt: skip
            print(f"    {item['description']}")
    if note:
        print(note, file=sys.stderr)
    return 0


def _known_tools() -> tuple[list[dict[str, Any]], str]:
    """The tools the workers published (what a job may name), else this process's own
    (`RUNQ_TOOL_MODULES`), with a note saying which when it is not the workers'."""
    from runq.config.settings import get_settings
    from runq.runs.tools import load_tool_modules, registry
    from runq.worker.discovery import resolve_redis_url

    settings = get_settings()
    url = resolve_redis_url(settings)
    if url:
        from redis.exceptions import RedisError

        from runq.producers.client.sync import Client
        from runq.runs import tool_catalog

        try:
            published = tool_catalog.published(Client(url, settings).redis)
        except RedisError:
            published = []
        if published:
            return published, ""
    load_tool_modules(settings.tool_modules)
    where = "no worker has published its tools yet" if url else "no Redis to ask the workers"
    return registry.describe(), f"({where}: these are the tools RUNQ_TOOL_MODULES loads here)"


def _from_settings(name: str) -> str:
    """`(default: RUNQ_MODEL, else gpt-5-mini)`: where an option's default comes from."""
    field = Settings.__dataclass_fields__[name]
    fallback = "none" if field.default is None else field.default
    return f"(default: {field.metadata['env'] or 'RUNQ_' + name.upper()}, else {fallback})"


def add_commands(sub: Any) -> None:
    """Add `submit`, `status`, `result`, `watch`, `cancel` and `tools` to the subcommands."""
    _add_submit(sub)

    p = sub.add_parser("status", help="print a job's status, age, step and when it moves next",
                       description="The first line is the status alone (for scripts); "
                       "then how long the job has run, its step and when that is due.")  # fmt: skip
    p.add_argument("job_id", help="the id `runq submit` printed")
    p.add_argument("--json", action="store_true", help="print the same as one JSON object")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("result", help="print a job's result")
    p.add_argument("job_id", help="the id `runq submit` printed")
    p.add_argument("--wait", action="store_true", help="wait for the job to end")
    p.add_argument("--timeout", type=option_types.seconds, default=None,
                   help="with --wait: seconds to wait at most (default: no limit)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.set_defaults(func=cmd_result)

    p = sub.add_parser("watch", help="print a job's events live")
    p.add_argument("job_id", help="the id `runq submit` printed")
    p.add_argument("--timeout", type=option_types.seconds, default=None,
                   help="seconds to watch at most (default: until the job ends)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="one JSON object per event")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("cancel", help="cancel a job")
    p.add_argument("job_id")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("tools", help="list the tools a job may name (the workers' tools)")
    p.add_argument("--json", action="store_true", help="every tool with its JSON schema")
    p.set_defaults(func=cmd_tools)


def _add_submit(sub: Any) -> None:
    p = sub.add_parser("submit", help="enqueue a conversation job",
                       description="Enqueue a job and print its id; with --wait, print the "
                       "id, wait, then print the result.")  # fmt: skip
    p.add_argument("text", help="the user's message")
    backend = p.add_argument("--backend", help=f"run protocol: {', '.join(BACKENDS)} "
                             f"{_from_settings('backend')}")  # fmt: skip
    p.add_argument("--model", help=f"the model to ask {_from_settings('model')}")
    mode = p.add_argument("--mode", help=f"{', '.join(MODES)}: poll the run, stream its text, "
                          f"or wait for its webhook {_from_settings('mode')}")  # fmt: skip
    # Checked by the job's validation (its message names the option), offered by completion.
    completion.offer(backend, BACKENDS)
    completion.offer(mode, MODES)
    p.add_argument("--tool", action="append", metavar="NAME",
                   help="a tool the model may call; repeat for several (`runq tools` lists "
                   "them; default: none)")  # fmt: skip
    p.add_argument("--instructions", metavar="TEXT",
                   help="system instructions for the model (default: none)")  # fmt: skip
    p.add_argument("--deadline", type=option_types.duration, metavar="DURATION",
                   help="how long the job may take in all: 600 (seconds), 90s, 15m, 24h, 2d "
                   f"{_from_settings('job_deadline')}")  # fmt: skip
    p.add_argument("--continue", dest="continue_job", metavar="JOB_ID",
                   help="continue the conversation of an earlier job")  # fmt: skip
    p.add_argument("--conversation", metavar="ID",
                   help="continue a runq conversation (a result's `conversation`, or "
                   "`runq conversations import`; default: a new one)")  # fmt: skip
    multitask = p.add_argument("--multitask", metavar="STRATEGY",
                               help="while another job has the conversation: enqueue (wait), "
                               "reject, interrupt or rollback it (docs/approvals.md) "
                               f"{_from_settings('multitask')}")  # fmt: skip
    completion.offer(multitask, MULTITASK_STRATEGIES)
    p.add_argument("--approve-tool", action="append", metavar="NAME",
                   help="calls of this tool wait for `runq approve`; repeat for several "
                   "(besides tools registered requires_approval)")  # fmt: skip
    p.add_argument("--chain", metavar="NAME", help=f"a fallback chain named in configuration "
                   f"{_from_settings('chain')}")  # fmt: skip
    p.add_argument("--idempotency-key", metavar="KEY",
                   help="submitting the same job with the same key again returns the first "
                   "job; another job with that key is refused (default: none)")  # fmt: skip
    p.add_argument("--wait", action="store_true",
                   help="print the id, then wait for the result and print it")  # fmt: skip
    p.add_argument("--timeout", type=option_types.seconds, default=None, metavar="SECONDS",
                   help="with --wait: seconds to wait at most; the job goes on after "
                   "(default: no limit)")  # fmt: skip
    p.add_argument("--json", action="store_true",
                   help="print JSON (with --wait, the id goes to stderr)")  # fmt: skip
    job_options.add_flags(p)
    p.set_defaults(func=cmd_submit)
