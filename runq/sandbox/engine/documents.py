"""Text extraction for vector-store ingestion: txt, md, html, json, pdf and docx.

Extraction runs on the bytes of an uploaded file; a format that cannot be parsed
raises :class:`UnsupportedFile`, and the vector-store file ends ``failed`` with that
message as ``last_error``, as the real service does.
"""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser
from typing import Any

TEXT_EXTENSIONS = (".txt", ".md", ".markdown", ".text", ".csv", ".rst")


class UnsupportedFile(ValueError):
    """The file's format is not one the sandbox can read."""


class _HTMLText(HTMLParser):
    _SKIP = frozenset({"script", "style", "head"})
    _BLOCK = frozenset({"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skip:
            self._skip -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _text(data: bytes) -> str:
    """Text in one of the encodings file_search reads: utf-8 (or ascii), or utf-16 with a
    byte order mark. Anything else fails ingestion, as it does at the API."""
    codec = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        return data.decode(codec)
    except UnicodeDecodeError as err:
        raise UnsupportedFile(
            f"text must be utf-8, utf-16 or ascii; undecodable byte at offset {err.start}"
        ) from None


def _html(data: bytes) -> str:
    parser = _HTMLText()
    parser.feed(_text(data))
    return "".join(parser.parts)


def _json_text(value: Any) -> str:
    """Flatten JSON to ``key: value`` lines so its facts become searchable sentences."""
    lines: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, val in node.items():
                walk(val, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list):
            for item in node:
                walk(item, path)
        else:
            lines.append(f"{path}: {node}." if path else f"{node}.")

    walk(value, "")
    return "\n\n".join(lines)


def _pdf(data: bytes) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return "\n\n".join(page.extract_text() or "" for page in reader.pages)


def _docx(data: bytes) -> str:
    import docx

    document = docx.Document(io.BytesIO(data))
    return "\n\n".join(p.text for p in document.paragraphs if p.text.strip())


def extract_text(filename: str, data: bytes) -> str:
    """The text of a file, chosen by extension (with a sniff for PDF and DOCX)."""
    name = filename.lower()
    try:
        if name.endswith(".pdf") or data.startswith(b"%PDF"):
            return _pdf(data)
        if name.endswith(".docx"):
            return _docx(data)
        if name.endswith((".html", ".htm")):
            return _html(data)
        if name.endswith(".json"):
            return _json_text(json.loads(_text(data)))
        if name.endswith(TEXT_EXTENSIONS) or "." not in name:
            return _text(data)
    except UnsupportedFile:
        raise
    except Exception as exc:  # a corrupt file of a known type
        raise UnsupportedFile(f"Could not parse {filename}: {exc}") from exc
    raise UnsupportedFile(f"Unsupported file type: {filename}")
