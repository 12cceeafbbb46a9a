"""Text extraction for vector-store ingestion: txt, md, html, json, pdf and docx.

Extraction runs on the bytes of an uploaded file, in a process of its own
(:mod:`.parse_worker`); a format the sandbox does not read raises
:class:`UnsupportedFile` (``last_error.code`` ``unsupported_file``), a file of a known
format that cannot be read raises :class:`InvalidFile` (``invalid_file``), and the
vector-store file ends ``failed`` with that message as ``last_error``, as the real
service does.

A DOCX is a zip archive, and a zip can be a bomb: a 200 KB file whose ``document.xml``
inflates to gigabytes. Before python-docx sees one, :func:`check_zip` adds up its
members' declared sizes and then inflates each member, counting, and refuses the file
as soon as either passes ``max_unpacked_bytes``, so the bytes a member really inflates
to are bounded whatever its header claims.

The text keeps the structure an answer needs to quote whole sentences (see
:mod:`.sentences`): paragraphs, headings and list items end their block. A PDF gives
lines, not paragraphs, so its lines are reflowed (:func:`_reflow`); DOCX list
paragraphs become ``- `` items; JSON is flattened to one fact per block.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import zipfile
import zlib
from html.parser import HTMLParser
from typing import Any

from runq.sandbox.engine.sentences import GENERIC_LABELS

_ROW = re.compile(r"^[A-Z][\w /+&()-]{0,30}: \S")  # "Power supply: 24 VAC", a table row
TEXT_EXTENSIONS = (".txt", ".md", ".markdown", ".text", ".csv", ".rst")


class UnsupportedFile(ValueError):
    """The file's format is not one the sandbox can read."""

    code = "unsupported_file"


class InvalidFile(UnsupportedFile):
    """A file of a known format that cannot be read: corrupt, undecodable or too big."""

    code = "invalid_file"


DEFAULT_MAX_UNPACKED_BYTES = 64 * 1024 * 1024


def check_zip(data: bytes, max_unpacked_bytes: int) -> None:
    """Refuse a zip whose members inflate to more than ``max_unpacked_bytes`` in all.

    The declared sizes are checked first (cheap); then every member is inflated in
    pieces and its real size counted, which stops a member whose header lies.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise InvalidFile(f"not a valid DOCX (zip) file: {exc}") from None
    limit = f"the sandbox's limit of {max_unpacked_bytes} bytes unpacked"
    with archive:
        declared = sum(info.file_size for info in archive.infolist())
        if declared > max_unpacked_bytes:
            raise InvalidFile(f"the document unpacks to {declared} bytes, over {limit}")
        total = 0
        for info in archive.infolist():
            try:
                with archive.open(info) as member:
                    while piece := member.read(1 << 20):
                        total += len(piece)
                        if total > max_unpacked_bytes:
                            raise InvalidFile(
                                f"{info.filename} unpacks to more than its declared "
                                f"{info.file_size} bytes, over {limit}"
                            )
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise InvalidFile(f"corrupt member {info.filename}: {exc}") from None


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
        raise InvalidFile(
            f"text must be utf-8, utf-16 or ascii; undecodable byte at offset {err.start}"
        ) from None


def _html(data: bytes) -> str:
    parser = _HTMLText()
    parser.feed(_text(data))
    return "".join(parser.parts)


def _label(path: list[str]) -> str:
    """``["specifications", "battery_life"]`` -> ``Specifications battery life``."""
    words = " ".join(path).replace("_", " ")
    return words[:1].upper() + words[1:]


def _prose(value: Any) -> bool:
    return isinstance(value, str) and value.strip().endswith((".", "!", "?"))


def _note(value: Any, path: list[str]) -> bool:
    """Is ``value`` a sentence under no key, or one that only says it is one (``notes``)?"""
    return _prose(value) and (not path or path[-1].lower() in GENERIC_LABELS)


def _json_text(value: Any) -> str:
    """Flatten JSON to one fact per block, so its facts become searchable sentences.

    A value is labelled with its path, ``Specifications battery: One CR2032 coin
    cell.``, and a list of such values is one fact, ``Specifications sensors:
    temperature, occupancy.`` A sentence under a key that only names a kind of text
    (``notes``, ``summary``, ...) stands alone: ``notes: The sensor ...`` quoted that
    key as if it were part of the answer.
    """
    blocks: list[str] = []

    def fact(path: list[str], values: list[str]) -> None:
        text = ", ".join(values)
        stop = "" if text.endswith((".", "!", "?")) else "."
        blocks.append(f"{_label(path)}: {text}{stop}" if path else f"{text}{stop}")

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, dict):
            for key, val in node.items():
                walk(val, [*path, str(key)])
        elif isinstance(node, list):
            if all(not isinstance(item, dict | list) and not _prose(item) for item in node):
                if node:
                    fact(path, [str(item) for item in node])
            else:  # records, or sentences: each its own fact
                for item in node:
                    walk(item, path)
        elif _note(node, path):
            blocks.append(str(node).strip())
        elif node is not None:
            fact(path, [str(node)])

    walk(value, [])
    return "\n\n".join(blocks)


def _reflow(page: str) -> str:
    """A PDF page's lines joined into paragraphs; headings and list lines kept apart.

    A line that reaches the right margin (75 % of the page's longest line or more) was
    wrapped, so it continues on the next line. A shorter line ends its block (a
    paragraph's last line, a heading, a list or table row), and so does a full line
    ending with a stop when the next line looks like a heading (short, no stop), or a
    ``Label: value`` row followed by another row.
    """
    lines = [line.strip() for line in page.splitlines() if line.strip()]
    if not lines:
        return ""
    full = 0.75 * max(len(line) for line in lines)
    out = [lines[0]]
    for before, line in itertools.pairwise(lines):
        heading = len(line) < full and not line.endswith((".", "!", "?", ":", ";", ","))
        stops = before.endswith((".", "!", "?", ":"))
        rows = _ROW.match(before) is not None and _ROW.match(line) is not None
        wrapped = len(before) >= full and not (stops and heading) and not rows
        out.append(" " if wrapped else "\n\n")
        out.append(line)
    return "".join(out)


def _pdf(data: bytes) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return "\n\n".join(_reflow(page.extract_text() or "") for page in reader.pages)


def _docx(data: bytes) -> str:
    """Paragraphs as blocks; those of a list style or numbering as ``- `` items."""
    import docx

    document = docx.Document(io.BytesIO(data))
    blocks = []
    for paragraph in document.paragraphs:
        if not paragraph.text.strip():
            continue
        style = paragraph.style.name if paragraph.style is not None else ""
        properties = paragraph._p.pPr
        numbered = properties is not None and properties.numPr is not None
        listed = style.startswith("List") or numbered
        blocks.append(f"- {paragraph.text}" if listed else paragraph.text)
    return "\n\n".join(blocks)


def extract_text(
    filename: str, data: bytes, max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES
) -> str:
    """The text of a file, chosen by extension (with a sniff for PDF and DOCX)."""
    name = filename.lower()
    try:
        if name.endswith(".pdf") or data.startswith(b"%PDF"):
            return _pdf(data)
        if name.endswith(".docx"):
            if max_unpacked_bytes > 0:
                check_zip(data, max_unpacked_bytes)
            return _docx(data)
        if name.endswith((".html", ".htm")):
            return _html(data)
        if name.endswith(".json"):
            return _json_text(json.loads(_text(data)))
        if name.endswith(TEXT_EXTENSIONS) or "." not in name:
            return _text(data)
    except (UnsupportedFile, MemoryError):
        raise
    except Exception as exc:  # a corrupt file of a known type
        raise InvalidFile(f"Could not parse {filename}: {exc}") from exc
    raise UnsupportedFile(f"Unsupported file type: {filename}")
