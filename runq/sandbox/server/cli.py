"""``runq sandbox`` / ``python -m runq.sandbox``: serve the sandbox from the command line.

Flags override ``RUNQ_SANDBOX_*`` environment variables, which override defaults.
The first line printed is ``sandbox listening on http://HOST:PORT/v1`` (with the real
port when ``--port 0``), flushed at once so a parent process can read it. Without the
``sandbox`` extra it prints one line naming it and exits 2 (:mod:`.extras`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from runq.sandbox.engine.config import SandboxConfig, parse_faults
from runq.sandbox.server import extras

EXIT_MISSING_EXTRA = 2  # like a usage error: the command cannot run as installed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runq sandbox", description="Offline OpenAI-compatible server for runq."
    )
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (0 picks a free one)")
    parser.add_argument("--latency-ms", type=int, help="time to first token per step, ms")
    parser.add_argument("--tokens-per-second", type=float, help="output speed (0 = instant)")
    parser.add_argument(
        "--request-latency-ms", type=int, help="added to every API request, ms (network)"
    )
    parser.add_argument("--rpm", type=int, help="requests per minute per API key (0 = off)")
    parser.add_argument("--tpm", type=int, help="tokens per minute per API key (0 = off)")
    parser.add_argument("--faults", help="fault profile, e.g. 429=0.1,500=0.05,hang=0.02")
    parser.add_argument("--seed", type=int, help="seed of the fault dice")
    parser.add_argument("--api-keys", help="comma-separated accepted keys (default: any)")
    parser.add_argument("--snapshot", help="JSON file to load state from and save it to")
    parser.add_argument(
        "--snapshot-interval", type=float, help="seconds between snapshot saves (0 = exit only)"
    )
    parser.add_argument("--webhook-url", help="POST signed webhooks here (http or https)")
    parser.add_argument(
        "--webhook-secret",
        help="whsec_... signing secret (prefer RUNQ_SANDBOX_WEBHOOK_SECRET: argv is visible)",
    )
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = SandboxConfig.from_env().replace(
            host=args.host,
            port=args.port,
            latency_ms=args.latency_ms,
            tokens_per_second=args.tokens_per_second,
            request_latency_ms=args.request_latency_ms,
            rpm=args.rpm,
            tpm=args.tpm,
            faults=parse_faults(args.faults) if args.faults is not None else None,
            seed=args.seed,
            api_keys=[k for k in args.api_keys.split(",") if k] if args.api_keys else None,
            snapshot_path=args.snapshot,
            snapshot_interval_seconds=args.snapshot_interval,
            webhook_url=args.webhook_url,
            webhook_secret=args.webhook_secret,
        )
    except ValueError as exc:
        parser.error(str(exc))
    absent = extras.missing()
    if absent:  # one line, before the first import that would fail with a traceback
        print(extras.message(absent), file=sys.stderr)
        return EXIT_MISSING_EXTRA
    from runq.sandbox.engine.snapshot import SnapshotError
    from runq.sandbox.server.serve import SandboxServer  # after parsing: --help stays instant

    try:
        server = SandboxServer(config, log_level=args.log_level)
    except SnapshotError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"sandbox: cannot bind {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    print(f"sandbox listening on {server.base_url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0
