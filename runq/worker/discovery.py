"""How commands find the stack `runq up` started: its state file and the URLs it names.

`runq up` writes `<RUNQ_HOME>/state.json` (its pid, Redis URL and sandbox URL); any
command run from the same folder reads it when `REDIS_URL` or `OPENAI_BASE_URL` is not
set. An explicit setting always wins. This lives apart from `worker.launcher` because
every producer command resolves these URLs, and none of them should import the code
that starts processes (subprocess, urllib and the rest).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runq.config.settings import Settings

STATE_FILE = "state.json"


def write_state(home: Path, **state: object) -> None:
    """Record where `runq up` put its services, for commands run from the same folder."""
    home.mkdir(parents=True, exist_ok=True)
    # It holds the Redis URL with its password: readable by its owner only.
    path = home / STATE_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps({"pid": os.getpid(), **state}))
    os.chmod(path, 0o600)  # an older file may have been made with a wider mode


def clear_state(home: Path) -> None:
    """Remove the state file, if this process wrote it."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        data = json.loads((home / STATE_FILE).read_text())
        if data.get("pid") == os.getpid():
            (home / STATE_FILE).unlink()


def read_state(home: Path) -> dict[str, object]:
    """The state of a live `runq up` in this folder, or {} when none runs."""
    try:
        data = json.loads((home / STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    pid = data.get("pid")
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError, PermissionError):
        return {}
    return dict(data)


def resolve_redis_url(settings: Settings) -> str | None:
    """REDIS_URL if set, else the Redis of a `runq up` running from this folder."""
    if settings.redis_url:
        return settings.redis_url
    url = read_state(settings.home).get("redis_url")
    return str(url) if url else None


def resolve_base_url(settings: Settings) -> str | None:
    """OPENAI_BASE_URL if set, else the sandbox of a `runq up` running from this folder."""
    if settings.openai_base_url:
        return settings.openai_base_url
    url = read_state(settings.home).get("base_url")
    return str(url) if url else None
