"""Is the ``sandbox`` extra installed? Checked before anything imports it.

The base install of runq has no web server; ``pip install 'runq[sandbox]'`` adds
Starlette, uvicorn, python-multipart (uploads), the PDF and DOCX parsers, and bm25s
with PyStemmer (file_search's ranking and stemming). Without
them the server would die on its first import with a traceback; the CLI asks
:func:`missing` first, with ``importlib.util.find_spec`` (which imports nothing), and
prints one line naming the extra instead.

The sandbox imports nothing from the rest of runq, so this mirrors, rather than uses,
runq's own check of its extras; the line reads word for word like runq's (the same
modules, in the same order), whichever of ``runq sandbox`` and ``python -m runq.sandbox``
the user ran.
"""

from __future__ import annotations

import importlib.util

EXTRA = "sandbox"

# The modules the extra provides, as runq's own check names them. A module that has
# been renamed lists its other names: any one of them will do (python-multipart ships
# ``python_multipart`` and, for older code, ``multipart``).
REQUIRED: tuple[tuple[str, ...], ...] = (
    ("starlette",),
    ("uvicorn",),
    ("multipart", "python_multipart"),
    ("pypdf",),
    ("docx",),
    ("bm25s",),
    ("Stemmer",),
)


def missing() -> list[str]:
    """The modules of the extra that cannot be imported here (empty: installed)."""
    return [
        names[0]
        for names in REQUIRED
        if not any(importlib.util.find_spec(module) for module in names)
    ]


def message(absent: list[str], feature: str = "runq sandbox") -> str:
    """The one line to print: what is missing and the ``pip install`` that adds it."""
    return (
        f"{feature} needs the '{EXTRA}' extra, which is not installed "
        f"(no {', '.join(absent)}): pip install 'runq[{EXTRA}]'"
    )
