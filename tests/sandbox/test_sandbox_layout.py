"""The sandbox's layering, checked on the source: what each subpackage may import.

``runq.sandbox`` is a standalone server, so it imports nothing else of runq; inside it,
``server`` may import ``api`` and ``engine``, ``api`` only ``engine``, and ``engine``
neither, nor any web framework (see each subpackage's docstring).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "runq" / "sandbox"
WEB = ("starlette", "uvicorn", "multipart", "python_multipart")


def imported(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports in functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def violations(sub: str, forbidden: Callable[[str], bool]) -> dict[str, list[str]]:
    """``{file: [forbidden imports]}`` for the modules under ``runq/sandbox/<sub>``."""
    found = {}
    for path in sorted((SANDBOX / sub).rglob("*.py")):
        bad = sorted(n for n in imported(path) if forbidden(n))
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def test_sandbox_imports_nothing_else_of_runq() -> None:
    def other_runq(name: str) -> bool:
        return name.split(".")[0] == "runq" and not name.startswith("runq.sandbox")

    assert violations("", other_runq) == {}


def test_engine_imports_no_http() -> None:
    def http(name: str) -> bool:
        return name.split(".")[0] in WEB or name.startswith(
            ("runq.sandbox.api", "runq.sandbox.server")
        )

    assert violations("engine", http) == {}


def test_api_does_not_import_the_server() -> None:
    assert violations("api", lambda name: name.startswith("runq.sandbox.server")) == {}


def test_serving_loads_no_other_part_of_runq() -> None:
    """At run time too: the whole app imported, ``runq`` itself is the only other module."""
    code = (
        "import sys, runq.sandbox.cli, runq.sandbox.server.serve\n"
        "print(sorted(m for m in sys.modules if m.startswith('runq')"
        " and m != 'runq' and not m.startswith('runq.sandbox')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
