"""Is the ``sandbox`` extra installed? Checked before anything imports it.

The base install of runq has no web server; ``pip install 'runq[sandbox]'`` adds
Starlette, uvicorn, python-multipart (uploads) and the PDF and DOCX parsers. Without
them the server would die on its first import with a traceback; the CLI asks
:func:`missing` first, with ``importlib.util.find_spec`` (which imports nothing), and
prints one line naming the extra instead.

The sandbox imports nothing from the rest of runq, so this mirrors, rather than uses,
runq's own check of its extras.
"""

from __future__ import annotations

import importlib.util

EXTRA = "sandbox"

# The distributions of the extra, each with the module names that provide it (any one).
REQUIRED: dict[str, tuple[str, ...]] = {
    "starlette": ("starlette",),
    "uvicorn": ("uvicorn",),
    "python-multipart": ("python_multipart", "multipart"),
    "pypdf": ("pypdf",),
    "python-docx": ("docx",),
}


def missing() -> list[str]:
    """The distributions of the extra that cannot be imported here (empty: installed)."""
    return [
        name
        for name, modules in REQUIRED.items()
        if not any(importlib.util.find_spec(module) for module in modules)
    ]


def message(absent: list[str], feature: str = "runq sandbox") -> str:
    """The one line to print: what is missing and the ``pip install`` that adds it."""
    verb = "is" if len(absent) == 1 else "are"
    return (
        f"{feature} needs the '{EXTRA}' extra ({', '.join(absent)} {verb} not installed): "
        f"pip install 'runq[{EXTRA}]'"
    )
