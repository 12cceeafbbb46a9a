"""The sample corpus in examples/: every document parses, and every question has one source.

`make demo` and `runq ask examples/docs --questions examples/questions.txt` run on these
files, so they are checked here with the same libraries the project reads them with:
pypdf for PDF, python-docx for DOCX, html.parser for HTML and json for JSON.

expected_sources.json maps each question of questions.txt to {"file": ..., "phrase": ...}:
the phrase must be in the extracted text of that file and of no other file. The question
whose answer is not in the corpus has "file": null, and its phrase is in no file at all.
"""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from collections import Counter
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

import docx
import pypdf
import pytest

from examples import make_corpus

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DOCS = EXAMPLES / "docs"
QUESTIONS = EXAMPLES / "questions.txt"
EXPECTED = EXAMPLES / "expected_sources.json"

SUPPORTED = {
    "nimbus_t3_manual.pdf",
    "warranty_and_returns.docx",
    "faq.html",
    "release_notes.md",
    "support_and_shipping.txt",
    "rs1_sensor_datasheet.json",
}
UNSUPPORTED = {"logo.png"}

# The Q&A retrieval: BM25 over chunks of about 800 tokens.
CHUNK_TOKENS = 800
STOPWORDS = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from"}
    | {"how", "i", "in", "is", "it", "its", "many", "my", "of", "on", "one", "or", "the"}
    | {"this", "to", "what", "when", "where", "which", "who", "why", "with"}
)


# --- text extraction, one function per format -------------------------------------------


class _HTMLText(HTMLParser):
    BLOCKS = {"p", "h1", "h2", "h3", "h4", "li", "div", "article", "section", "title", "br"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style"}:
            self._skip += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style"}:
            self._skip -= 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _json_strings(value: object, key: str = "") -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _json_strings(v, str(k))]
    if isinstance(value, list):
        return [s for v in value for s in _json_strings(v, key)]
    text = str(value)
    return [f"{key}: {text}" if key and not text.endswith(".") else text]


def _pdf_pages(path: Path) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(path, strict=True).pages]


def _docx_text(path: Path) -> str:
    return "\n".join(p.text for p in docx.Document(str(path)).paragraphs)


@cache
def extract_text(name: str, folder: Path = DOCS) -> str:
    path = folder / name
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return "\n".join(_pdf_pages(path))
    if suffix == ".docx":
        return _docx_text(path)
    if suffix == ".html":
        parser = _HTMLText()
        parser.feed(path.read_text(encoding="utf-8"))
        parser.close()
        return "".join(parser.parts)
    if suffix == ".json":
        return "\n".join(_json_strings(json.loads(path.read_text(encoding="utf-8"))))
    if suffix in {".md", ".txt"}:
        return path.read_text(encoding="utf-8")
    raise ValueError(f"unsupported file type: {name}")


def normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.casefold())


def content_words(text: str) -> set[str]:
    return {w for w in words(text) if w not in STOPWORDS}


def load_expected() -> dict[str, dict[str, str | None]]:
    return json.loads(EXPECTED.read_text(encoding="utf-8"))


def questions() -> list[str]:
    return [line.strip() for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line]


# --- the documents --------------------------------------------------------------------


def test_docs_folder_holds_the_corpus_and_one_unsupported_file() -> None:
    assert {p.name for p in DOCS.iterdir()} == SUPPORTED | UNSUPPORTED


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_document_parses_to_nontrivial_text(name: str) -> None:
    text = extract_text(name)
    assert len(text) >= 1000, f"{name}: only {len(text)} characters"
    assert len(words(text)) >= 150, f"{name}: only {len(words(text))} words"
    assert "Nimbus" in text


def test_manual_pdf_has_three_to_five_pages_of_prose() -> None:
    pages = _pdf_pages(DOCS / "nimbus_t3_manual.pdf")
    assert 3 <= len(pages) <= 5
    for number, page in enumerate(pages, start=1):
        assert len(words(page)) >= 250, f"page {number} is nearly empty"
        assert f"Page {number} of {len(pages)}" in page


def test_manual_pdf_text_comes_back_with_its_word_spacing() -> None:
    text = normalise(extract_text("nimbus_t3_manual.pdf"))
    for _kind, block in make_corpus.parse_blocks(make_corpus.MANUAL_TEXT):
        assert normalise(block) in text, f"not extracted verbatim: {block[:60]!r}"
    # Glued words would show up as implausibly long tokens.
    assert max(len(token) for token in text.split()) <= 20


def test_policy_docx_has_headings_and_all_its_text() -> None:
    document = docx.Document(str(DOCS / "warranty_and_returns.docx"))
    styles = Counter(p.style.name for p in document.paragraphs if p.style is not None)
    assert styles["Title"] == 1 and styles["Heading 1"] >= 4 and styles["Normal"] >= 8
    text = normalise(extract_text("warranty_and_returns.docx"))
    for _kind, block in make_corpus.parse_blocks(make_corpus.POLICY_TEXT):
        assert normalise(block) in text, f"not extracted verbatim: {block[:60]!r}"


def test_faq_html_marks_up_questions_and_answers() -> None:
    html = (DOCS / "faq.html").read_text(encoding="utf-8")
    assert html.count('class="question"') == html.count('class="answer"') >= 6
    assert "body {" not in extract_text("faq.html")  # the style sheet is not text


def test_unsupported_file_is_a_valid_png() -> None:
    data = (DOCS / "logo.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    assert data.endswith(b"IEND\xaeB`\x82")


def test_make_corpus_reproduces_the_committed_binaries(tmp_path: Path) -> None:
    make_corpus.build(tmp_path)
    # The PDF writer is plain Python, so the bytes are identical.
    assert (tmp_path / "nimbus_t3_manual.pdf").read_bytes() == (
        DOCS / "nimbus_t3_manual.pdf"
    ).read_bytes()
    # A DOCX is a zip: compare what it says rather than how it was compressed.
    assert _docx_text(tmp_path / "warranty_and_returns.docx") == _docx_text(
        DOCS / "warranty_and_returns.docx"
    )
    assert _png_pixels(tmp_path / "logo.png") == _png_pixels(DOCS / "logo.png")


def _png_pixels(path: Path) -> tuple[bytes, bytes]:
    data = path.read_bytes()
    header = data[16:29]
    idat_len = struct.unpack(">I", data[33:37])[0]
    return header, zlib.decompress(data[41 : 41 + idat_len])


# --- the questions --------------------------------------------------------------------


def test_questions_and_expected_sources_agree() -> None:
    asked = questions()
    assert 8 <= len(asked) <= 10
    assert len(set(asked)) == len(asked)
    assert list(load_expected()) == asked
    files = [entry["file"] for entry in load_expected().values()]
    assert files.count(None) == 1, "exactly one question must have no answer in the corpus"
    assert {f for f in files if f} == SUPPORTED, "every document answers some question"


@pytest.mark.parametrize("question", questions())
def test_phrase_is_in_the_expected_source_only(question: str) -> None:
    entry = load_expected()[question]
    source, phrase = entry["file"], entry["phrase"]
    assert phrase
    if source is not None:
        assert (DOCS / source).is_file()
    holders = sorted(
        name for name in SUPPORTED if normalise(phrase) in normalise(extract_text(name))
    )
    assert holders == ([source] if source else []), f"{phrase!r} found in {holders}"


@pytest.mark.parametrize(
    "question", [q for q in questions() if load_expected()[q]["file"] is not None]
)
def test_answer_sentence_shares_key_words_with_the_question(question: str) -> None:
    entry = load_expected()[question]
    assert entry["file"] and entry["phrase"]
    text = " ".join(extract_text(entry["file"]).split())
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if entry["phrase"] in s]
    assert sentences, f"no sentence holds {entry['phrase']!r}"
    best = max(len(content_words(question) & content_words(s)) for s in sentences)
    assert best >= 2, f"the answer sentence shares {best} key word(s) with the question"


def _chunks() -> list[tuple[str, list[str]]]:
    chunks = []
    for name in sorted(SUPPORTED):
        tokens = words(extract_text(name))
        for start in range(0, len(tokens), CHUNK_TOKENS):
            chunks.append((name, tokens[start : start + CHUNK_TOKENS]))
    return chunks


def _bm25_ranking(query: str, k1: float = 1.5, b: float = 0.75) -> list[tuple[float, str]]:
    chunks = _chunks()
    avg_len = sum(len(tokens) for _, tokens in chunks) / len(chunks)
    df = Counter(term for _, tokens in chunks for term in set(tokens))
    ranking = []
    for name, tokens in chunks:
        tf = Counter(tokens)
        score = 0.0
        for term in set(words(query)):
            if term not in tf:
                continue
            idf = math.log(1 + (len(chunks) - df[term] + 0.5) / (df[term] + 0.5))
            norm = tf[term] + k1 * (1 - b + b * len(tokens) / avg_len)
            score += idf * tf[term] * (k1 + 1) / norm
        ranking.append((score, name))
    return sorted(ranking, reverse=True)


@pytest.mark.parametrize(
    "question", [q for q in questions() if load_expected()[q]["file"] is not None]
)
def test_bm25_ranks_a_chunk_of_the_expected_source_first(question: str) -> None:
    ranking = _bm25_ranking(question)
    assert ranking[0][1] == load_expected()[question]["file"], ranking[:3]
