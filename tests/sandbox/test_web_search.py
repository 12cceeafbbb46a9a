"""The sandbox's web_search tool through the official ``openai`` client over HTTP.

The offline web is a fixed index (the sample corpus and a few reference pages under
example domains): a search answers with a ``web_search_call`` item and ``url_citation``
annotations, in plain, background and streaming mode; ``include`` adds the sources;
``allowed_domains`` filters them. Objects are checked against the client's types and
OpenAI's OpenAPI description.
"""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from openai.types.responses import Response
from sandbox_helpers import is_terminal, wait_until
from test_sandbox_conformance import check, check_response_events, raw, sse

from runq.sandbox.engine import web_search

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ROOT = Path(__file__).resolve().parents[2]
SOURCES = "web_search_call.action.sources"


def _message_part(response: Response) -> dict:
    message = next(item for item in response.output if item.type == "message")
    return message.content[0].model_dump()


def test_a_search_answers_with_cited_pages(client: openai.OpenAI) -> None:
    body = raw(
        client.responses.with_raw_response.create(
            model="gpt-4o-mini",
            input="What are template strings in Python 3.14?",
            tools=[{"type": "web_search"}],
            include=[SOURCES],
        )
    )
    response = check(body, Response, "Response")
    call, message = response.output
    assert call.type == "web_search_call" and call.status == "completed"
    assert call.action.type == "search"
    assert call.action.query == "What are template strings in Python 3.14?"
    urls = [source.url for source in call.action.sources]
    assert urls[0] == "https://docs.example.com/python/whats-new-3-14"
    part = message.content[0]
    assert "Template" in part.text and "t-string" in part.text
    notes = part.annotations
    assert notes and all(n.type == "url_citation" for n in notes)
    assert notes[0].url == "https://docs.example.com/python/whats-new-3-14"
    assert notes[0].title == "What's new in Python 3.14"
    cited = part.text[notes[0].start_index : notes[0].end_index]
    assert cited == "([docs.example.com](https://docs.example.com/python/whats-new-3-14))"


def test_sources_only_when_include_asks_and_the_sample_corpus_is_searchable(
    client: openai.OpenAI,
) -> None:
    response = client.responses.create(
        model="gpt-4o-mini",
        input="How much does express shipping cost?",
        tools=[{"type": "web_search_preview", "search_context_size": "low"}],
    )
    call = response.output[0]
    assert call.type == "web_search_call" and call.action.sources is None
    part = _message_part(response)
    assert part["annotations"][0]["url"] == "https://docs.example.com/support/shipping"
    assert "express" in part["text"].lower()


def test_allowed_domains_keep_only_those_hosts(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="gpt-4o-mini",
        input="How does the offline web search rank pages?",
        tools=[{"type": "web_search", "filters": {"allowed_domains": ["example.org"]}}],
        include=[SOURCES],
    )
    call = response.output[0]
    assert call.action.sources
    assert {s.url for s in call.action.sources} == {"https://www.example.org/offline-web"}
    assert _message_part(response)["annotations"][0]["url"].startswith("https://www.example.org/")


def test_nothing_relevant_answers_without_citations(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="gpt-4o-mini",
        input="Who painted the ceiling of the Sistine Chapel?",
        tools=[{"type": "web_search"}],
    )
    assert response.output[0].type == "web_search_call"
    part = _message_part(response)
    assert part["text"] == web_search.NOT_FOUND_ANSWER and part["annotations"] == []


def test_tool_choice_none_and_bad_tools(client: openai.OpenAI) -> None:
    quiet = client.responses.create(
        model="gpt-4o-mini", input="hello", tools=[{"type": "web_search"}], tool_choice="none"
    )
    assert [item.type for item in quiet.output] == ["message"]
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(
            model="gpt-4o-mini",
            input="hello",
            tools=[{"type": "web_search", "search_context_size": "huge"}],
        )
    assert bad.value.body["param"] == "tools[0].search_context_size"


def test_background_response_shows_the_search_when_done(client: openai.OpenAI) -> None:
    started = client.responses.create(
        model="gpt-4o-mini",
        input="When do firmware updates install?",
        tools=[{"type": "web_search"}],
        background=True,
    )
    done = wait_until(lambda: client.responses.retrieve(started.id), is_terminal)
    assert done.status == "completed"
    assert [item.type for item in done.output] == ["web_search_call", "message"]
    assert _message_part(done)["annotations"][0]["url"] == (
        "https://docs.example.com/nimbus/release-notes"
    )


def test_stream_has_the_search_stages_and_the_citations(client: openai.OpenAI) -> None:
    body = {
        "model": "gpt-4o-mini",
        "input": "What are template strings in Python 3.14?",
        "tools": [{"type": "web_search"}],
        "stream": True,
    }
    events = check_response_events(sse(client, "POST", "/responses", body))
    kinds = [e["type"] for e in events]
    stages = [k for k in kinds if k.startswith("response.web_search_call.")]
    assert stages == [
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.web_search_call.completed",
    ]
    assert "response.output_text.annotation.added" in kinds
    final = events[-1]["response"]
    assert final["output"][0]["type"] == "web_search_call"
    assert final["output"][1]["content"][0]["annotations"][0]["type"] == "url_citation"


def test_the_packaged_pages_are_the_sample_corpus() -> None:
    """The web's copies of examples/docs stay the same files (update both together)."""
    for name in ("faq.html", "release_notes.md", "support_and_shipping.txt",
                 "rs1_sensor_datasheet.json", "nimbus_t3_manual.pdf",
                 "warranty_and_returns.docx"):  # fmt: skip
        packaged = (web_search.PAGES_DIR / name).read_bytes()
        assert packaged == (ROOT / "examples" / "docs" / name).read_bytes(), name
    urls = [page.url for page in web_search.pages()]
    assert len(urls) == len(set(urls)) == 9
    assert all(url.startswith("https://") and ".example." in url for url in urls)
    assert all(page.text.strip() for page in web_search.pages())
