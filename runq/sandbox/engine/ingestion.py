"""Vector-store ingestion off the request path: each file parsed in a child process.

Adding a file to a vector store used to parse it inside the request: a 214 KB DOCX
"zip bomb" held the server's only event loop for two minutes and took a gigabyte. Now
the route records the file as ``in_progress`` and returns at once, as the API does; an
:class:`Ingestor` thread hands the bytes to a child process
(:mod:`.parse_worker`) that extracts and chunks them under hard limits:

- the unpacked size of a DOCX (``ingest_max_unpacked_bytes``: declared and real sizes
  of its zip members, checked while inflating);
- the child's address space (``ingest_memory_mb``) and CPU time;
- the wall-clock time (``ingest_timeout_seconds``): past it the child is killed.

(A limit set to 0 is no limit.)

The thread then stores the outcome on the vector-store file, which becomes
``completed``, or ``failed`` with ``last_error {code, message}``: ``unsupported_file``
for a format the sandbox does not read, ``invalid_file`` for a corrupt, undecodable or
oversized file, ``server_error`` when the parser ran out of time or memory or crashed.
At most :data:`WORKERS` files are parsed at once, so a burst of uploads cannot take
every core from the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

WORKERS = 2
# The directory holding the ``runq`` package, so the child imports this very copy.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])


@dataclass(frozen=True)
class IngestLimits:
    """What one file's parsing may cost before it is given up."""

    max_unpacked_bytes: int = 64 * 1024 * 1024
    timeout_seconds: float = 30.0
    memory_bytes: int = 2048 * 1024 * 1024


@dataclass
class Parsed:
    """A parse's outcome: the text and its chunks, or an error code and message."""

    text: str = ""
    chunks: list[str] = field(default_factory=list)
    error_code: str | None = None
    error: str | None = None


def _failure(code: str, message: str) -> Parsed:
    return Parsed(error_code=code, error=message)


def parse_isolated(
    filename: str,
    data: bytes,
    chunking: tuple[int, int],
    limits: IngestLimits,
    running: set[subprocess.Popen[bytes]] | None = None,
) -> Parsed:
    """Parse and chunk ``data`` in a child process under ``limits`` (blocks until done).

    The child is in ``running`` while it runs, so that a shutdown can kill it.
    """
    job = {
        "filename": filename,
        "max_chunk_size_tokens": chunking[0],
        "chunk_overlap_tokens": chunking[1],
        "max_unpacked_bytes": limits.max_unpacked_bytes,
        "memory_bytes": limits.memory_bytes,
        "cpu_seconds": limits.timeout_seconds,
    }
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "runq.sandbox.engine.parse_worker", json.dumps(job)]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    running = set() if running is None else running
    running.add(proc)
    try:
        out, err = proc.communicate(data, timeout=limits.timeout_seconds or None)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return _failure(
            "server_error",
            f"Parsing {filename} took longer than {limits.timeout_seconds:g} s, the "
            "sandbox's limit (ingest_timeout_seconds); it was stopped.",
        )
    finally:
        running.discard(proc)
    if proc.returncode != 0:
        last = (err.decode("utf-8", "replace").strip().splitlines() or [""])[-1]
        reason = "ran out of memory" if "MemoryError" in last else "stopped"
        return _failure(
            "server_error",
            f"The parser {reason} while reading {filename} (exit status {proc.returncode}).",
        )
    try:
        answer = json.loads(out)
    except ValueError:
        return _failure("server_error", f"The parser gave no answer for {filename}.")
    if "error" in answer:
        return _failure(answer["error"]["code"], answer["error"]["message"])
    return Parsed(text=answer["text"], chunks=list(answer["chunks"]))


class Ingestor:
    """A small pool of threads, each waiting on one parsing child at a time."""

    def __init__(self, limits: IngestLimits, workers: int = WORKERS) -> None:
        self.limits = limits
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._closed = False

    def submit(
        self,
        filename: str,
        data: bytes,
        chunking: tuple[int, int],
        done: Callable[[Parsed], None],
    ) -> Future[None]:
        """Parse in the background; ``done(parsed)`` runs on the pool's thread."""

        def work() -> None:
            try:
                parsed = parse_isolated(filename, data, chunking, self.limits, self._running)
            except Exception as exc:  # never leave a file in_progress for ever
                parsed = _failure("server_error", f"Could not start the parser: {exc}")
            if not self._closed:  # after a shutdown the file stays in_progress
                done(parsed)

        with self._lock:
            self._closed = False
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sandbox-ingest")
            return self._pool.submit(work)

    def shutdown(self) -> None:
        """Stop: queued files are dropped and running children killed (they stay
        ``in_progress``; a snapshot loaded later parses them again)."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._closed = True
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(self._running):
            proc.kill()
