"""`runq flower`: Flower (the Celery monitor) against runq's Redis, with basic auth.

Flower can revoke and kill tasks, restart pools and shows every job's arguments, so it
never runs open: credentials come from `--basic-auth user:pass` or, better (they do not
show in `ps`), the environment variable `RUNQ_FLOWER_BASIC_AUTH`. Without them the
command refuses to start. `--demo` is the exception for a laptop: no auth, and bound to
127.0.0.1 only.

The command replaces itself with `python -m celery -A worker flower ...` (Flower 2.2)
so that signals reach Flower directly (a container's PID 1, Ctrl-C). Credentials are
handed over in Flower's own `FLOWER_BASIC_AUTH` variable, never on its command line.
The tasks page shows each task's arguments, so a job id finds its `runq.jobs.start`,
`runq.jobs.poll` and `runq.tools.call` tasks (search `args:job_...`).

Note: Flower's own `/metrics` and `/healthcheck` are served without authentication.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from runq.errors import ConfigurationError

AUTH_ENV = "RUNQ_FLOWER_BASIC_AUTH"
DEFAULT_PORT = 5555
LOOPBACK = ("127.0.0.1", "localhost", "::1")
TASK_COLUMNS = "name,uuid,state,args,received,started,runtime,worker"
# Workers scaled down (or replaced by a deploy) leave Flower's list after this long.
PURGE_OFFLINE_WORKERS = 600


@dataclass(frozen=True)
class FlowerOptions:
    port: int = DEFAULT_PORT
    address: str = "127.0.0.1"
    basic_auth: str | None = None
    demo: bool = False
    url_prefix: str | None = None


def check_basic_auth(value: str) -> str:
    """`user:pass` with both parts present; Flower splits its variable on commas."""
    user, sep, password = value.partition(":")
    if not sep or not user.strip() or not password:
        raise ConfigurationError(
            f"{AUTH_ENV} / --basic-auth must look like user:password (both parts non-empty)"
        )
    if "," in value:
        raise ConfigurationError(f"{AUTH_ENV} / --basic-auth must not contain a comma")
    return value


def resolve_auth(options: FlowerOptions, environ: Mapping[str, str]) -> str | None:
    """The credentials to require, or None in demo mode; refuse to run open otherwise."""
    if options.demo:
        if options.address not in LOOPBACK:
            raise ConfigurationError(
                f"--demo runs Flower without authentication, so it binds 127.0.0.1 only "
                f"(got --address {options.address}); drop --demo and set {AUTH_ENV} "
                "to listen on other interfaces"
            )
        return None
    value = options.basic_auth or environ.get(AUTH_ENV)
    if not value:
        raise ConfigurationError(
            f"Flower needs basic auth: set {AUTH_ENV}=user:password (or pass "
            "--basic-auth user:password); use --demo for an unauthenticated Flower on "
            "127.0.0.1 only"
        )
    return check_basic_auth(value)


def check_port_free(address: str, port: int) -> None:
    """Refuse a port something already listens on, in one line, before becoming Flower:
    after the exec, Flower would fail with a traceback ending in a raw OSError."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Flower's server does
        try:
            probe.bind((address, port))
        except OSError as exc:
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"fails: {exc}"
            raise ConfigurationError(
                f"port {port} on {address} {reason} (another Flower?); pick another with "
                "--port, or stop what listens there"
            ) from None


def flower_command(
    options: FlowerOptions, redis_url: str, environ: Mapping[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that start Flower for this deployment."""
    environ = dict(os.environ if environ is None else environ)
    auth = resolve_auth(options, environ)
    argv = [
        sys.executable, "-m", "celery", "-A", "runq.worker", "flower",
        f"--address={options.address}", f"--port={options.port}",
        f"--tasks_columns={TASK_COLUMNS}",
        f"--purge_offline_workers={PURGE_OFFLINE_WORKERS}",
    ]  # fmt: skip
    if options.url_prefix:
        argv.append(f"--url_prefix={options.url_prefix}")
    env = {k: v for k, v in environ.items() if k not in ("FLOWER_BASIC_AUTH", AUTH_ENV)}
    env.pop("FLOWER_UNAUTHENTICATED_API", None)
    env["REDIS_URL"] = redis_url
    if auth is not None:
        env["FLOWER_BASIC_AUTH"] = auth
    return argv, env


def run_flower(options: FlowerOptions, redis_url: str | None = None) -> int:
    """Check the options, then become Flower (this call does not return on success)."""
    resolve_auth(options, os.environ)  # refuse before looking for Redis
    check_port_free(options.address, options.port)
    if redis_url is None:
        from runq.config.settings import get_settings
        from runq.producers.client.sync import require_redis_url

        # REDIS_URL, or the `runq up` of this folder
        redis_url = require_redis_url(get_settings(), "monitor")
    argv, env = flower_command(options, redis_url)
    where = f"http://{options.address}:{options.port}{options.url_prefix or ''}/"
    auth = "without authentication (--demo)" if options.demo else "with basic auth"
    print(f"flower starting on {where} {auth}", flush=True)
    os.execve(argv[0], argv, env)
    return 0  # pragma: no cover - execve does not return
