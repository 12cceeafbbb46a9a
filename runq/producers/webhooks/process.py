"""`runq webhooks` as a child process of the embedded stack (`runq up --webhooks`, tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from runq.producers.webhooks import PATH
from runq.worker.children import free_port, spawn, stop_process, wait_until


@dataclass
class WebhookServerProcess:
    """The receiver on 127.0.0.1: wakes jobs on `redis_url`, verifies with `secret` (given
    through the environment, never on argv)."""

    redis_url: str
    secret: str
    port: int = 0
    env: dict[str, str] | None = None
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Where a sender posts deliveries."""
        return self.base + PATH

    def start(self, timeout: float = 30.0) -> WebhookServerProcess:
        self.port = self.port or free_port()
        args = [sys.executable, "-m", "runq.producers.cli", "webhooks", "--port", str(self.port)]
        env = {**os.environ, **(self.env or {}), "REDIS_URL": self.redis_url,
               "OPENAI_WEBHOOK_SECRET": self.secret}  # fmt: skip
        out = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_path.open("ab")
        self.proc = spawn(args, env=env, stdout=out, stderr=subprocess.STDOUT if out else None)
        wait_until(self.ready, "runq webhooks", timeout, self.proc)
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=1) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None
