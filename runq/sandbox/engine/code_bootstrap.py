"""The first code a code-interpreter child runs, before the user's code (``python -c``).

The parent (:mod:`.code_runner`) passes this file's text to ``python -I -B -c`` with
the limits and the read-only roots as one JSON argument, and the user's code on stdin.
It imports nothing of runq (the child must not need the package) and, in this order:

1. caps its own resources with ``resource.setrlimit`` - CPU seconds, address space,
   file size, core dumps, and the number of processes - *before* it reads any user
   code (the same effect as a ``preexec_fn``, which is unsafe in the threaded server);
2. reads the code from stdin and closes stdin;
3. installs an audit hook (``sys.addaudithook``: it cannot be removed afterwards)
   that refuses, with ``PermissionError``:
   - opening a path outside the working directory, except reading the Python
     installation (stdlib, site-packages), the matplotlib cache and ``/dev/null``;
   - listing, creating, removing, renaming, linking or changing paths outside it;
   - starting processes (``os.fork``, ``os.exec*``, ``os.posix_spawn``,
     ``os.system``, ``subprocess.Popen``), sending signals (``os.kill``...);
   - any socket operation (creating, connecting, resolving names);
   - re-importing ``_posixsubprocess`` or ``_ctypes``, stripped beforehand
     (:func:`_disarm`) of their unaudited fork and raw-memory functions;
   - loading a library or calling a foreign function through ``ctypes`` (importing
     ``ctypes``, which numpy does, stays possible);
4. runs the code as ``__main__`` with the Agg matplotlib backend.

What this does not stop is documented in ``docs/sandbox.md`` ("Code interpreter"):
the hook is a Python-level barrier, so native code already loaded can bypass it; the
network namespace (``unshare -n``), when available, is the kernel-level barrier.
"""

import contextlib
import json
import os
import resource
import sys


def _limit(limits):
    pairs = (
        (resource.RLIMIT_CPU, limits["cpu_seconds"], limits["cpu_seconds"] + 1),
        (resource.RLIMIT_AS, limits["memory_bytes"], limits["memory_bytes"]),
        (resource.RLIMIT_FSIZE, limits["file_bytes"], limits["file_bytes"]),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_NPROC, limits["processes"], limits["processes"]),
    )
    for which, soft, hard in pairs:
        if soft > 0:
            with contextlib.suppress(ValueError, OSError):  # a platform without it
                resource.setrlimit(which, (soft, hard))


def _inside(path, root):
    return path == root or path.startswith(root + os.sep)


def _disarm():
    """Take away the unaudited ways to start a process or write memory.

    ``_posixsubprocess.fork_exec`` forks without an audit event, and ctypes'
    ``memmove``/``memset``/``cast``/``string_at`` reach raw memory without one (they could
    patch the hook away). Both modules are imported here, before the hook, and stripped;
    the hook then refuses loading them afresh. ``import subprocess`` and ``import
    ctypes`` (which matplotlib and numpy do) keep working.
    """
    import _ctypes
    import _posixsubprocess
    import ctypes
    import subprocess  # noqa: F401 - cached in sys.modules, stripped of its fork

    del _posixsubprocess.fork_exec
    for name in ("memmove", "memset", "string_at", "wstring_at", "cast", "pythonapi"):
        if hasattr(ctypes, name):
            delattr(ctypes, name)
    for name in dir(_ctypes):
        if name.endswith("_addr"):
            delattr(_ctypes, name)


def _install_hook(root, readable):  # noqa: C901 - one flat dispatch on the event name
    realpath = os.path.realpath
    fspath = os.fspath
    fsdecode = os.fsdecode
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    devices = ("/dev/null", "/dev/urandom", "/dev/random")
    refused_prefixes = ("socket.", "os.exec", "os.spawn", "os.posix_spawn")
    refused = {
        "os.fork",
        "os.forkpty",
        "os.system",
        "os.kill",
        "os.killpg",
        "signal.pthread_kill",
        "subprocess.Popen",
        "pty.spawn",
        "ctypes.dlsym",
        "ctypes.dlsym/handle",
        "ctypes.call_function",
        "ctypes.cdata",
        "ctypes.cdata/buffer",
        "os.setuid",
        "os.chroot",
    }
    path_events = {
        "os.listdir": (0, False),
        "os.scandir": (0, False),
        "os.chdir": (0, False),
        "os.mkdir": (0, True),
        "os.rmdir": (0, True),
        "os.remove": (0, True),
        "os.rename": (0, True),
        "os.symlink": (1, True),
        "os.link": (1, True),
        "os.chmod": (0, True),
        "os.chown": (0, True),
        "os.truncate": (0, True),
        "os.utime": (0, True),
        "os.chflags": (0, True),
        "os.setxattr": (0, True),
        "os.removexattr": (0, True),
        "shutil.rmtree": (0, True),
    }

    def check_path(event, raw, writing):
        if raw is None or isinstance(raw, int):
            return  # an already open descriptor
        name = fsdecode(fspath(raw))
        full = realpath(name)
        if _inside(full, root):
            return
        if full in devices:
            return
        if not writing and any(_inside(full, r) for r in readable):
            return
        raise PermissionError(
            f"{event}: access outside the container's directory is not allowed: {name}"
        )

    def hook(event, args):
        if event == "import" and args[0] in ("_posixsubprocess", "_ctypes"):
            raise PermissionError(f"import: {args[0]} cannot be loaded again in this container")
        elif event == "open":
            path, mode, flags = args
            writing = bool((flags or 0) & write_flags)
            if isinstance(mode, str) and any(c in mode for c in "wax+"):
                writing = True
            check_path(event, path, writing)
        elif event in path_events:
            index, writing = path_events[event]
            check_path(event, args[index], writing)
            if event in ("os.rename", "os.symlink", "os.link"):  # both ends stay inside
                check_path(event, args[1 - index], True)
        elif event == "ctypes.dlopen":
            if args[0] is not None:  # ``import ctypes`` opens the process itself (None)
                check_path(event, args[0], True)
        elif event in refused or event.startswith(refused_prefixes):
            if event.startswith("socket."):
                raise PermissionError(f"{event}: network access is disabled in this container")
            raise PermissionError(f"{event}: not allowed in this container")

    sys.addaudithook(hook)


def main():
    config = json.loads(sys.argv[1])
    _limit(config["limits"])
    code = sys.stdin.read()
    sys.stdin.close()
    sys.stdin = open(os.devnull)  # noqa: SIM115 - before the hook: the child's whole life
    root = os.path.realpath(os.getcwd())
    os.environ["MPLBACKEND"] = "Agg"
    _disarm()
    _install_hook(root, tuple(os.path.realpath(p) for p in config["readable"]))
    del sys.argv[1:]
    sys.argv[0] = "main.py"
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(code, "main.py", "exec"), namespace)
    except SystemExit:
        raise
    except BaseException as exc:  # the user's error, shown without this file's frames
        import traceback

        frames = exc.__traceback__
        traceback.print_exception(type(exc), exc, frames.tb_next if frames else None)
        sys.exit(1)


if __name__ == "__main__":  # run as ``python -c <this file>``; importing it does nothing
    main()
