"""Redis replies as text.

runq's clients are made without `decode_responses` (the job store and kombu share
connections), but tests and tools may pass a decoding client: every place that turns a
reply into a string goes through `text()`, which accepts both.
"""

from __future__ import annotations

from typing import Any


def text(value: Any) -> str:
    """A reply (bytes, str, or a number from a Lua script) as a str."""
    return value.decode() if isinstance(value, bytes) else str(value)
