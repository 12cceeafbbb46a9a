"""The Responses ``web_search`` tool over an offline "web": a small fixed index.

The sandbox never reaches the Internet. Its web is the pages listed in
``runq/sandbox/web_pages/pages.json``: the Nimbus Home sample documents (copies of
``examples/docs``) and a few reference pages, each at a stable ``https`` address under
a reserved example domain (``docs.example.com``, ``www.example.org``), so a search
gives the same sources on every machine. Pages are parsed once
(:func:`~.documents.extract_text`), cut into the file_search chunks
(:func:`~.tokens.chunk_text`, 800/400 tokens) and ranked by the same BM25 engine
(:func:`~.retrieval.bm25`); the answer quotes the best sentences
(:func:`~.retrieval.best_sentences`), each followed by a markdown link to its page that
a ``url_citation`` annotation covers (``start_index`` / ``end_index``, ``url``,
``title``), as the real model cites the web.

The model searches when the tool is offered (rule 6 of :mod:`.model`): the query is the
last user text. The response shows a ``web_search_call`` item (``status: completed``,
``action: {"type": "search", "query", "queries"}``) before the answer, and the action's
``sources`` (``[{"type": "url", "url"}]``) only when ``include`` lists
``web_search_call.action.sources``, as at the API. ``filters.allowed_domains`` keeps
pages of those hosts (and their subdomains); ``search_context_size`` sets how many
passages are read (low 3, medium 5, high 8).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runq.sandbox.engine.documents import extract_text
from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.model import Reply, Segment
from runq.sandbox.engine.retrieval import best_sentences, bm25
from runq.sandbox.engine.tokens import chunk_text

PAGES_DIR = Path(__file__).resolve().parents[1] / "web_pages"
TOOL_TYPES = (
    "web_search",
    "web_search_2025_08_26",
    "web_search_preview",
    "web_search_preview_2025_03_11",
)
INCLUDE_SOURCES = "web_search_call.action.sources"
CONTEXT_PASSAGES = {"low": 3, "medium": 5, "high": 8}
TOOL_KEYS = {"type", "search_context_size", "user_location", "filters", "external_web_access"}
MAX_DOMAINS = 100
NOT_FOUND_ANSWER = "I could not find an answer to that on the web."
_INDEX_KEY = ("sandbox-web-index",)


@dataclass(frozen=True)
class Page:
    url: str
    title: str
    text: str


@functools.lru_cache(maxsize=1)
def pages() -> tuple[Page, ...]:
    """Every page of the offline web (read and parsed once per process)."""
    listing = json.loads((PAGES_DIR / "pages.json").read_text(encoding="utf-8"))
    found = []
    for entry in listing:
        data = (PAGES_DIR / entry["file"]).read_bytes()
        found.append(Page(entry["url"], entry["title"], extract_text(entry["file"], data)))
    return tuple(found)


@functools.lru_cache(maxsize=1)
def _chunks() -> tuple[dict[str, Any], ...]:
    out = []
    for page in pages():
        pieces = chunk_text(page.text)
        for i, piece in enumerate(pieces):
            out.append(
                {
                    "url": page.url,
                    "title": page.title,
                    "text": piece,
                    "cut_start": i > 0,
                    "cut_end": i < len(pieces) - 1,
                }
            )
    return tuple(out)


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _domain_allowed(url: str, domains: tuple[str, ...]) -> bool:
    if not domains:
        return True
    host = _host(url)
    return any(host == d or host.endswith("." + d) for d in domains)


@dataclass(frozen=True)
class WebSearch:
    """One ``web_search`` tool definition, validated."""

    allowed_domains: tuple[str, ...] = ()
    passages: int = CONTEXT_PASSAGES["medium"]

    @classmethod
    def parse(cls, tool: dict[str, Any], param: str) -> WebSearch:
        """The tool as the API checks it (a 400 naming the parameter)."""
        unknown = sorted(set(tool) - TOOL_KEYS)
        if unknown:
            where = f"{param}.{unknown[0]}"
            raise bad_request(f"Unknown parameter: '{where}'.", where)
        size = tool.get("search_context_size") or "medium"
        if size not in CONTEXT_PASSAGES:
            raise bad_request(
                f"Invalid '{param}.search_context_size': expected one of low, medium, high.",
                f"{param}.search_context_size",
            )
        filters = tool.get("filters")
        domains: list[str] = []
        if filters is not None:
            if not isinstance(filters, dict) or set(filters) - {"allowed_domains"}:
                raise bad_request(
                    f"Invalid '{param}.filters': expected an object with allowed_domains.",
                    f"{param}.filters",
                )
            raw = filters.get("allowed_domains") or []
            where = f"{param}.filters.allowed_domains"
            if not isinstance(raw, list) or not all(isinstance(d, str) and d for d in raw):
                raise bad_request(f"Invalid '{where}': expected an array of domains.", where)
            if len(raw) > MAX_DOMAINS:
                raise bad_request(f"Invalid '{where}': at most {MAX_DOMAINS} domains.", where)
            domains = [d.lower().removeprefix("https://").removeprefix("http://").strip("/")
                       for d in raw]  # fmt: skip
        return cls(tuple(domains), CONTEXT_PASSAGES[size])

    def search(self, query: str) -> list[dict[str, Any]]:
        """The best passages for ``query`` among the allowed pages, best first."""
        hits = bm25(query, list(_chunks()), top_k=len(_chunks()), cache_key=_INDEX_KEY)
        return [h for h in hits if _domain_allowed(h["url"], self.allowed_domains)][: self.passages]

    def answer(self, query: str) -> Reply:
        """The model's step: search, then an answer quoting and citing the pages."""
        hits = self.search(query)
        turn = WebTurn.build(query, hits)
        return Reply(segments=[Segment(turn.text)], hosted=turn)


@dataclass
class Citation:
    start: int
    end: int
    url: str
    title: str


@dataclass
class WebTurn:
    """One search and the answer built from it."""

    query: str
    hits: list[dict[str, Any]]
    text: str
    citations: list[Citation] = field(default_factory=list)
    call_id: str = field(default_factory=lambda: new_id("ws"))

    @classmethod
    def build(cls, query: str, hits: list[dict[str, Any]]) -> WebTurn:
        """Each supporting sentence, then ``([host](url))`` which its citation covers."""
        found = best_sentences(query, hits)
        if not found:
            return cls(query, hits, NOT_FOUND_ANSWER)
        text, citations = "", []
        for sentence, hit in found:
            text += (" " if text else "") + sentence + " "
            start = len(text)
            text += f"([{_host(hit['url'])}]({hit['url']}))"
            citations.append(Citation(start, len(text), hit["url"], hit["title"]))
        return cls(query, hits, text, citations)

    def sources(self) -> list[dict[str, Any]]:
        urls = dict.fromkeys(h["url"] for h in self.hits)
        return [{"type": "url", "url": url} for url in urls]

    def call_item(self, include: Any) -> dict[str, Any]:
        action: dict[str, Any] = {"type": "search", "query": self.query, "queries": [self.query]}
        if isinstance(include, list) and INCLUDE_SOURCES in include:
            action["sources"] = self.sources()
        return {"type": "web_search_call", "id": self.call_id, "status": "completed",
                "action": action}  # fmt: skip

    def annotations(self) -> list[dict[str, Any]]:
        return [
            {"type": "url_citation", "start_index": c.start, "end_index": c.end,
             "url": c.url, "title": c.title}
            for c in self.citations
        ]  # fmt: skip

    def attach(self, items: list[dict[str, Any]], include: Any) -> None:
        """Put the call before the answer, and cite the pages when the answer is this
        turn's text (not when a JSON format or a token limit changed it)."""
        for item in items:
            if item.get("type") == "message":
                for part in item["content"]:
                    if part.get("type") == "output_text" and part.get("text") == self.text:
                        part["annotations"] = self.annotations()
        at = next((i for i, item in enumerate(items) if item.get("type") == "message"), 0)
        items.insert(at, self.call_item(include))
