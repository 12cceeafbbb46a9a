"""Operations commands of the `runq` CLI: the services a deployment runs.

`runq worker`, `runq up`, `runq demo`, `runq metrics`, `runq flower`, `runq gateway` and
`runq webhooks`.
`cli.parser` calls `add_commands(subparsers)` on every start of `runq`, so this module
imports only what the options need; each handler imports its service when it runs, and
returns the exit code. A command that needs an extra (`gateway`, `flower`; `up` and
`demo` check theirs in `ops.up` and `ops.demo`) requires it before importing it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from runq.config.extras import require
from runq.config.settings import METRICS_PORT
from runq.producers.cli import option_types, webhook_endpoints
from runq.producers.ops.flower import DEFAULT_PORT as FLOWER_PORT


def cmd_worker(args: argparse.Namespace) -> int:
    from runq.config.settings import get_settings
    from runq.config.worker_pools import default_shape
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
        *default_shape(args.queues, args.pool, args.concurrency).args(),
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
        fresh=args.fresh,
        webhooks=args.webhooks,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from runq.producers.ops.demo import run_demo

    return run_demo(questions_file=args.questions, latency_ms=args.latency_ms)


def cmd_metrics(args: argparse.Namespace) -> int:
    from runq.producers.ops.metrics_server import run_metrics

    return run_metrics(args.host, args.port)


def cmd_flower(args: argparse.Namespace) -> int:
    require("flower", "runq flower")
    from runq.producers.ops.flower import FlowerOptions, run_flower

    options = FlowerOptions(
        port=args.port, address=args.address, basic_auth=args.basic_auth, demo=args.demo,
        url_prefix=args.url_prefix,
    )  # fmt: skip
    return run_flower(options)


def cmd_gateway(args: argparse.Namespace) -> int:
    require("gateway", "runq gateway")  # before importing FastAPI, uvicorn and sse-starlette
    from runq.producers.gateway.server import run_gateway

    return run_gateway(host=args.host, port=args.port, demo=args.demo)


def cmd_webhooks(args: argparse.Namespace) -> int:
    require("gateway", "runq webhooks")  # the same web stack as the gateway (uvicorn)
    from runq.producers.webhooks.server import run_webhooks

    return run_webhooks(host=args.host, port=args.port)


def add_commands(sub: Any) -> None:
    """Add `worker`, `up`, `demo`, `metrics`, `flower`, `gateway` and `webhooks`."""
    _add_stack_commands(sub)
    _add_monitor_commands(sub)
    _add_gateway_command(sub)


def _add_stack_commands(sub: Any) -> None:
    p = sub.add_parser("worker", help="run a Celery worker for the runs and tools queues")
    p.add_argument("-Q", "--queues", default="runs,tools",
                   help="the queues to take work from, comma separated")  # fmt: skip
    p.add_argument("-c", "--concurrency", type=option_types.positive, default=None,
                   help="tasks run at once (default: 64 threads; one process per CPU "
                   "with --pool prefork)")  # fmt: skip
    p.add_argument("--pool", default=None,
                   help="Celery's pool: threads, prefork, solo (default: threads when the "
                   "worker takes the runs queue, whose steps wait on HTTP; prefork for "
                   "tools only)")  # fmt: skip
    p.add_argument("--loglevel", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("up", help="run Redis, the sandbox and a worker in the foreground")
    p.add_argument("--workers", type=option_types.positive, default=1,
                   help="worker processes (each with -c task slots)")  # fmt: skip
    p.add_argument("-c", "--concurrency", type=option_types.positive, default=None,
                   help="task slots per worker (default: as `runq worker`: 64 threads for "
                   "runs, one process per CPU for --tool-workers)")  # fmt: skip
    p.add_argument(
        "--tool-workers",
        type=option_types.not_negative,
        default=0,
        help="separate workers for the tools queue, so slow tools never hold the slots "
        "polls and cancels need (default: 0, the workers take both queues)",
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
    p.add_argument("--flower-port", type=option_types.port, default=FLOWER_PORT,
                   help="Flower's port, with --flower or --flower-demo")  # fmt: skip
    p.add_argument(
        "--fresh",
        action="store_true",
        help="delete the embedded Redis's data first (jobs are otherwise kept across restarts)",
    )
    p.add_argument(
        "--webhooks",
        action="store_true",
        help="webhook mode: the sandbox sends signed webhooks to `runq webhooks`, and the "
        "workers wait for them instead of polling (docs/webhooks.md)",
    )
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("demo", help="start the embedded stack, answer the sample questions, stop")
    p.add_argument("--questions", default=None, metavar="FILE",
                   help="one question per line (default: the sample questions)")  # fmt: skip
    p.add_argument("--latency-ms", type=option_types.not_negative, default=300,
                   help="the sandbox's time to first token, per step")  # fmt: skip
    p.set_defaults(func=cmd_demo)


def _add_monitor_commands(sub: Any) -> None:
    p = sub.add_parser(
        "metrics",
        help="serve runq's Prometheus metrics (jobs, tools, retries, tokens, cost) at /metrics",
        description="Serve the metrics all workers record in Redis at http://HOST:PORT/metrics.",
    )
    p.add_argument("--port", type=option_types.port, default=METRICS_PORT,
                   help="port; 0 picks a free one")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="interface to bind")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser(
        "flower",
        help="run Flower (the Celery monitor) on runq's Redis, with basic auth",
        description="Run Flower against runq's Redis. Basic auth is required: --basic-auth "
        "or RUNQ_FLOWER_BASIC_AUTH=user:password; --demo runs it open on 127.0.0.1 only.",
    )
    p.add_argument("--port", type=option_types.port, default=FLOWER_PORT, help="port")
    p.add_argument("--address", default="127.0.0.1", help="interface to bind")
    p.add_argument(
        "--basic-auth",
        metavar="USER:PASS",
        help="credentials (prefer RUNQ_FLOWER_BASIC_AUTH: it does not show in ps)",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="no authentication, bound to 127.0.0.1 only (a laptop demo)",
    )
    p.add_argument("--url-prefix", metavar="PATH",
                   help="serve under this path, behind a reverse proxy (default: /)")  # fmt: skip
    p.set_defaults(func=cmd_flower)


def _add_gateway_command(sub: Any) -> None:
    p = sub.add_parser(
        "gateway",
        help="serve the HTTP gateway (POST /v1/jobs, SSE events, a small web page)",
        description="Serve runq over HTTP. Bearer tokens come from RUNQ_GATEWAY_TOKENS="
        "token:tenant,token2:tenant2; without tokens it refuses to start unless --demo "
        "(token `demo`, bound to 127.0.0.1 only).",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind")
    p.add_argument("--port", type=option_types.port, default=8000, help="port")
    p.add_argument(
        "--demo", action="store_true", help="accept the single token `demo`; binds 127.0.0.1 only"
    )
    p.set_defaults(func=cmd_gateway)

    p = sub.add_parser(
        "webhooks",
        help="receive OpenAI's webhooks without the gateway (webhook mode)",
        description="Serve POST /v1/webhooks/openai: verify each delivery with "
        "OPENAI_WEBHOOK_SECRET (or OPENAI_WEBHOOK_SECRET_FILE) and wake the job whose run "
        "ended. With an ACTION, manage the backend's webhook endpoints instead "
        "(docs/webhooks.md).",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind")
    p.add_argument("--port", type=option_types.port, default=8010, help="port")
    p.set_defaults(func=cmd_webhooks)
    webhook_endpoints.add_actions(p)
