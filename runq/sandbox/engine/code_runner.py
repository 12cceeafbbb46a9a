"""Running one piece of code-interpreter code: a Python child process under hard limits.

The code interpreter is the one place where the sandbox runs code a client chose, so
every execution gets its own process (:mod:`.code_bootstrap` is its first code):

- **working directory**: the container's directory (which holds its files); the
  child's ``cwd`` and ``HOME``; an audit hook refuses paths outside it, except reading
  the Python installation;
- **no network**: the child starts inside ``unshare -rn`` (a new user and network
  namespace: only a downed loopback) when the kernel allows it; otherwise the audit
  hook alone refuses every socket, and the logs say so (:data:`FALLBACK_NOTE`);
- **limits**: CPU seconds, address space, file size and process count
  (``setrlimit`` in the child before any user code), a wall-clock deadline past which
  the whole process group is killed, and a cap on the output kept;
- **processes**: the audit hook refuses ``fork``/``exec``/``subprocess``/signals, and
  ``RLIMIT_NPROC`` stops a fork that gets past it.

:func:`execute` blocks until the child ends; the API runs it in a worker thread so the
server keeps answering. What it reports (:class:`Execution`) is what the tool call
shows: the logs, an error when the code failed or a limit stopped it, and the files
the code created or changed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

_BOOTSTRAP = Path(__file__).with_name("code_bootstrap.py")
FALLBACK_NOTE = (
    "[sandbox] no network namespace on this host: sockets are refused by the "
    "interpreter's audit hook only\n"
)
MAX_GENERATED_FILES = 20


@dataclass(frozen=True)
class CodeLimits:
    """What one execution may cost (0 = that limit is off)."""

    cpu_seconds: int = 10
    wall_seconds: float = 30.0
    memory_bytes: int = 1024 * 1024 * 1024
    file_bytes: int = 32 * 1024 * 1024
    output_bytes: int = 64 * 1024
    processes: int = 1


@dataclass
class Execution:
    """The outcome of one execution, as the tool call reports it."""

    logs: str
    error: str | None = None  # why it failed: an exception, or the limit that stopped it
    files: list[str] = field(default_factory=list)  # created or changed, relative paths

    @property
    def ok(self) -> bool:
        return self.error is None


@functools.cache
def network_namespace_available() -> bool:
    """Can this host start a process in its own user and network namespace?"""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    try:
        done = subprocess.run(
            [unshare, "-rn", "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def readable_roots() -> list[str]:
    """The Python installation the child may read: the stdlib and site-packages."""
    paths = sysconfig.get_paths()
    keys = ("stdlib", "platstdlib", "purelib", "platlib")
    return sorted({os.path.realpath(paths[k]) for k in keys if paths.get(k)})


def warm_matplotlib(cache_dir: str) -> None:
    """Build matplotlib's font cache once in ``cache_dir`` (unconfined: it reads the
    system's fonts), so that each child only reads it."""
    os.makedirs(cache_dir, exist_ok=True)
    env = {**_base_env(cache_dir), "HOME": cache_dir}
    subprocess.run(
        [sys.executable, "-I", "-c", "import matplotlib.pyplot"],
        cwd=cache_dir,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )


def _base_env(mpl_dir: str) -> dict[str, str]:
    return {
        "PATH": os.defpath,
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": mpl_dir,
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONIOENCODING": "utf-8",
    }


def _listing(workdir: Path) -> dict[str, tuple[int, int]]:
    """Regular, visible files under ``workdir``: relative path -> (size, mtime_ns)."""
    found: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(workdir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if not os.path.islink(full) and os.path.isfile(full):
                found[os.path.relpath(full, workdir)] = (st.st_size, st.st_mtime_ns)
    return found


def execute(
    code: str,
    workdir: Path,
    mpl_dir: str,
    limits: CodeLimits,
    network_namespace: bool | None = None,
) -> Execution:
    """Run ``code`` in ``workdir`` under ``limits``; blocks until the child is gone.

    ``network_namespace``: start the child in its own network namespace (``None``: when
    the host allows it; ``False``: the audit hook alone refuses sockets, and the logs
    say so).
    """
    before = _listing(workdir)
    config = {
        "limits": {
            "cpu_seconds": limits.cpu_seconds,
            "memory_bytes": limits.memory_bytes,
            "file_bytes": limits.file_bytes,
            "processes": limits.processes,
        },
        "readable": [*readable_roots(), mpl_dir],
    }
    command = [sys.executable, "-I", "-B", "-c", _BOOTSTRAP.read_text(), json.dumps(config)]
    isolated = network_namespace_available() if network_namespace is None else network_namespace
    if isolated:
        command = ["unshare", "-rn", "--", *command]
    env = {**_base_env(mpl_dir), "HOME": str(workdir)}
    proc = subprocess.Popen(
        command,
        cwd=workdir,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, killed as one
    )
    output, stopped = _collect(proc, code.encode(), limits)
    logs = output.decode("utf-8", errors="replace")
    if not isolated:
        logs = FALLBACK_NOTE + logs
    error = stopped or _failure(proc.returncode, logs, limits)
    after = _listing(workdir)
    changed = [p for p, sig in sorted(after.items()) if before.get(p) != sig]
    return Execution(logs, error, changed[:MAX_GENERATED_FILES])


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _collect(
    proc: subprocess.Popen[bytes], stdin: bytes, limits: CodeLimits
) -> tuple[bytes, str | None]:
    """Feed the code, read at most ``output_bytes`` of output before the deadline.

    Returns the output and, when the runner stopped the child, why.
    """
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(stdin)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    deadline = time.monotonic() + limits.wall_seconds if limits.wall_seconds else None
    cap = limits.output_bytes or None
    kept = bytearray()
    stopped: str | None = None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                stopped = f"Execution timed out after {limits.wall_seconds:g} s (wall clock)."
                break
            if not sel.select(timeout=left):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            kept += chunk
            if cap is not None and len(kept) > cap:
                del kept[cap:]
                stopped = f"Output limit exceeded: more than {cap} bytes were printed."
                break
    if stopped is None:  # output ended: let the child exit on its own, within the deadline
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            proc.wait(timeout=left)
        except subprocess.TimeoutExpired:
            stopped = f"Execution timed out after {limits.wall_seconds:g} s (wall clock)."
    _kill_group(proc)  # the child if still there, and anything it may have left behind
    proc.stdout.close()
    proc.wait()
    return bytes(kept), stopped


def _failure(returncode: int, logs: str, limits: CodeLimits) -> str | None:
    """Why a child that ended on its own failed (None when it succeeded)."""
    if returncode == 0:
        return None
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL) and limits.cpu_seconds:
        return f"CPU time limit exceeded ({limits.cpu_seconds} s)."
    if returncode == -signal.SIGXFSZ:
        return f"File size limit exceeded ({limits.file_bytes} bytes)."
    lines = [line for line in logs.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if last.startswith("MemoryError") or returncode == -signal.SIGSEGV:
        return f"Memory limit exceeded ({limits.memory_bytes} bytes)."
    if returncode < 0:
        return f"The code was stopped by signal {signal.Signals(-returncode).name}."
    return last or f"The code exited with status {returncode}."
