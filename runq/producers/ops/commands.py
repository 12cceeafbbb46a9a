"""Operations commands of the `runq` CLI: `runq metrics` and `runq flower`.

`cli.entry` imports this module and calls `add_commands(subparsers)`; every handler
takes the parsed arguments and returns the exit code.
"""

from __future__ import annotations

import argparse
from typing import Any

from runq.config.settings import METRICS_PORT
from runq.producers.cli import option_types
from runq.producers.ops.flower import DEFAULT_PORT as FLOWER_PORT


def cmd_metrics(args: argparse.Namespace) -> int:
    from runq.producers.ops.metrics_server import run_metrics

    return run_metrics(args.host, args.port)


def cmd_flower(args: argparse.Namespace) -> int:
    from runq.producers.ops.flower import FlowerOptions, run_flower

    options = FlowerOptions(
        port=args.port, address=args.address, basic_auth=args.basic_auth, demo=args.demo,
        url_prefix=args.url_prefix,
    )  # fmt: skip
    return run_flower(options)


def add_commands(sub: Any) -> None:
    """Add `metrics` and `flower` to the `runq` subcommands."""
    p = sub.add_parser(
        "metrics",
        help="serve runq's Prometheus metrics (jobs, tools, retries, tokens, cost) at /metrics",
        description="Serve the metrics all workers record in Redis at http://HOST:PORT/metrics.",
    )
    p.add_argument("--port", type=option_types.port, default=METRICS_PORT,
                   help=f"port (default {METRICS_PORT}; 0 picks a free one)")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser(
        "flower",
        help="run Flower (the Celery monitor) on runq's Redis, with basic auth",
        description="Run Flower against runq's Redis. Basic auth is required: --basic-auth "
        "or RUNQ_FLOWER_BASIC_AUTH=user:password; --demo runs it open on 127.0.0.1 only.",
    )
    p.add_argument(
        "--port", type=option_types.port, default=FLOWER_PORT, help=f"default {FLOWER_PORT}"
    )
    p.add_argument("--address", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
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
    p.add_argument("--url-prefix", help="serve under this path (behind a reverse proxy)")
    p.set_defaults(func=cmd_flower)
