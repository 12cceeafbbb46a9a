"""A producer's own backend client: the workers' backend, or an error saying how to name one."""

from __future__ import annotations

from pathlib import Path

import pytest

from runq.config.settings import load_settings
from runq.errors import ConfigurationError
from runq.producers.ask.batch import openai_client
from runq.producers.ask.corpus import CorpusError
from runq.producers.backend_client import backend_client
from runq.producers.client.sync import Client
from runq.producers.webhooks import endpoints


@pytest.fixture
def nowhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No OPENAI_BASE_URL, no OPENAI_API_KEY, and no `runq up` in this folder."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / ".runq"


def test_with_no_backend_the_error_says_what_for_and_how_to_name_one(nowhere: Path) -> None:
    settings = load_settings(home=nowhere)
    with pytest.raises(ConfigurationError) as err:
        backend_client(settings, purpose="upload documents to")
    assert "no backend to upload documents to" in str(err.value)
    assert "OPENAI_BASE_URL" in str(err.value) and "runq up" in str(err.value)
    with pytest.raises(ConfigurationError, match="no backend to manage webhook endpoints at"):
        endpoints.backend_client(settings)


def test_ask_says_it_as_a_corpus_error(nowhere: Path) -> None:
    client = Client("redis://127.0.0.1:1/0", load_settings(home=nowhere))
    with pytest.raises(CorpusError, match="no backend to upload documents to"):
        openai_client(client)


def test_the_configured_backend_is_the_one_called(nowhere: Path) -> None:
    settings = load_settings(
        home=nowhere, openai_base_url="http://127.0.0.1:9/v1", request_timeout=7.0
    )
    api = backend_client(settings, purpose="upload documents to", max_retries=3)
    assert str(api.base_url) == "http://127.0.0.1:9/v1/"
    assert api.timeout == 7.0 and api.max_retries == 3
