"""`append_note`: a real side effect, deliberately not idempotent.

Each call appends one line to `notes.txt` in runq's home folder (`RUNQ_HOME`, default
`.runq/`). Running it twice writes two lines, which is exactly what makes it useful: the
chaos tests count the lines to prove that a redelivered tool task does not run a
non-idempotent tool again. It is registered with `idempotent=False` so runq never
retries it blindly.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from runq.config.settings import get_settings
from runq.runs.tools import tool

MAX_NOTE_CHARS = 2000
NOTES_FILE = "notes.txt"


def notes_path() -> Path:
    """Where notes go: `<RUNQ_HOME>/notes.txt`."""
    return get_settings().home / NOTES_FILE


@tool(timeout=5.0, idempotent=False)
def append_note(
    note: Annotated[str, "The text to remember (one line; newlines become spaces)"],
) -> dict[str, Any]:
    """Save a short note for later by appending it to the notes file.

    Every call adds a line, so call it once per note.
    """
    text = " ".join(note.split())
    if not text:
        raise ValueError("the note is empty")
    if len(text) > MAX_NOTE_CHARS:
        raise ValueError(f"the note is {len(text)} characters long; the limit is {MAX_NOTE_CHARS}")
    path = notes_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    line = f"{stamp}\t{text}\n".encode()
    # One write() on an O_APPEND descriptor: concurrent workers' lines never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return {"saved": text, "at": stamp, "path": str(path)}


def read_notes() -> list[str]:
    """The notes saved so far, oldest first, without their timestamps."""
    path = notes_path()
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("\t", 1)[-1] for line in lines if line]
