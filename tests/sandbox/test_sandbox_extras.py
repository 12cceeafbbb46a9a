"""Without the ``sandbox`` extra, ``runq sandbox`` says which pip extra to install.

One line on stderr and exit status 2, never a traceback from deep inside an import:
the CLI checks the extra's modules with ``importlib.util.find_spec`` before it imports
the app.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from runq.sandbox.server import cli, extras, serve

ROOT = Path(__file__).resolve().parents[2]


def hide(monkeypatch: pytest.MonkeyPatch, *absent: str) -> None:
    """Make ``find_spec`` report the modules ``absent`` as not installed."""
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name in absent else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_missing_starlette_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hide(monkeypatch, "starlette")

    def must_not_serve(*args: object, **kwargs: object) -> None:
        raise AssertionError("the server was started without its extra")

    monkeypatch.setattr(serve, "SandboxServer", must_not_serve)
    assert cli.main(["--port", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "runq sandbox needs the 'sandbox' extra, which is not installed (no starlette): "
        "pip install 'runq[sandbox]'\n"
    )


def test_every_missing_part_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "uvicorn", "pypdf", "docx")
    absent = extras.missing()
    assert absent == ["uvicorn", "pypdf", "docx"]
    assert extras.message(absent) == (
        "runq sandbox needs the 'sandbox' extra, which is not installed "
        "(no uvicorn, pypdf, docx): pip install 'runq[sandbox]'"
    )


def test_the_line_reads_like_the_rest_of_runqs(monkeypatch: pytest.MonkeyPatch) -> None:
    """``runq sandbox`` (runq's check) and ``python -m runq.sandbox`` (this one) say the same."""
    from runq.config.extras import EXTRAS
    from runq.errors import MissingExtraError

    assert [names[0] for names in extras.REQUIRED] == list(EXTRAS["sandbox"])
    hide(monkeypatch, *EXTRAS["sandbox"], "python_multipart")
    absent = extras.missing()
    assert absent == list(EXTRAS["sandbox"])
    runqs = MissingExtraError("sandbox", "runq sandbox", ", ".join(absent))
    assert extras.message(absent) == str(runqs)


def test_either_module_of_python_multipart_will_do(monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        hide(patch, "multipart")
        assert extras.missing() == []
    with monkeypatch.context() as patch:
        hide(patch, "python_multipart")
        assert extras.missing() == []
    hide(monkeypatch, "multipart", "python_multipart")
    assert extras.missing() == ["multipart"]


def test_python_m_runq_sandbox_without_starlette_has_no_traceback() -> None:
    """The real entry point, in a process where importing starlette fails."""
    code = (
        "import runpy, sys\n"
        "sys.modules['starlette'] = None  # find_spec: None; import: ImportError\n"
        "runpy.run_module('runq.sandbox', run_name='__main__', alter_sys=True)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "runq sandbox needs the 'sandbox' extra, which is not installed (no starlette): "
        "pip install 'runq[sandbox]'"
    ]


def test_the_retrieval_libraries_are_part_of_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """file_search ranks with bm25s and stems with PyStemmer: without them, one line."""
    hide(monkeypatch, "bm25s", "Stemmer")
    absent = extras.missing()
    assert absent == ["bm25s", "Stemmer"]
    assert extras.message(absent) == (
        "runq sandbox needs the 'sandbox' extra, which is not installed "
        "(no bm25s, Stemmer): pip install 'runq[sandbox]'"
    )
