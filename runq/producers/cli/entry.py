"""The entry point of the `runq` command: `main(argv)` runs one command, returns its status.

Every command that talks to Redis finds it the same way: `REDIS_URL`, else the stack a
`runq up` started from this folder. Errors print one line naming what to fix and exit 2,
never a traceback. `runq sandbox ARGS` goes to the sandbox's own CLI unparsed: it has
options of its own. A command whose optional part is not installed stops the same way,
naming the extra (`pip install 'runq[gateway]'`); it checks before importing that part.
"""

from __future__ import annotations

import sys

from runq.config.extras import require
from runq.config.settings import ConfigurationError
from runq.errors import RunqError
from runq.producers.cli.parser import build_parser

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sandbox":
        return _run_sandbox(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (RunqError, ConfigurationError) as exc:
        return _error(exc)
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


def _run_sandbox(argv: list[str]) -> int:
    """`runq sandbox ARGS`: the sandbox's own CLI parses ARGS and reports its errors; a
    missing `sandbox` extra is reported here, before any of the sandbox is imported."""
    try:
        require("sandbox", "runq sandbox")
    except RunqError as exc:
        return _error(exc)
    from runq.sandbox.cli import main as sandbox_main

    return sandbox_main(argv)


def _error(exc: Exception) -> int:
    print(f"runq: error: {exc}", file=sys.stderr)
    return EXIT_USAGE


def _redis_unreachable(exc: Exception) -> bool:
    """Is this redis-py saying the server is down, refusing us, or too slow to answer?"""
    if "redis" not in sys.modules:  # no command got as far as importing the client
        return False
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(exc, RedisConnectionError | RedisTimeoutError)
