"""`runq`'s public API: every name resolves, and importing the package costs nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

import runq
from tests.conftest import imported_modules


def test_every_public_name_resolves_to_what_it_says() -> None:
    for name in runq.__all__:
        value = getattr(runq, name)
        assert getattr(value, "__name__", name) == name, name
    assert issubclass(runq.InvalidJobError, runq.RunqError)
    assert runq.submit.__module__.startswith("runq.producers.client")


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        runq.no_such_name  # noqa: B018


def test_importing_runq_loads_no_client_library() -> None:
    """A tool module or the sandbox imports `runq`; that must not pull in Celery & co."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import runq"],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = imported_modules(done.stderr)
    assert "runq" in loaded
    assert not {"celery", "redis", "openai", "kombu", "runq.producers"} & loaded
