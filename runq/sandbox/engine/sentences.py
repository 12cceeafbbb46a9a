"""Clean sentences out of a chunk of extracted text: what an extractive answer quotes.

A file_search answer quotes sentences of the files, and it reads as prose only if each
quote is a whole, clean sentence. Extracted text carries the marks of its format, and
the first versions of the sandbox quoted them: ``**`` left over from Markdown bold, a
``notes:`` key from a flattened JSON file, ``interval..`` where the flattening added a
full stop to a value that had one, a heading glued to the sentence under it, or a
question from an FAQ quoted as its own answer. So, for each chunk:

1. **Blocks.** The text is cut into blocks at blank lines, before and after a Markdown
   heading (``# ...``), and before a list item (``-``, ``*``, ``+``, a bullet sign, or
   ``1.`` / ``1)``). Heading and bullet markers are removed. A block that ends with a
   colon followed by list items that continue it (the first in lower case, up to the
   one ending with a stop) is one sentence: ``The warranty does not cover: a; b; c.``
2. **Inline marks.** Markdown emphasis (``**b**``, ``__b__``, ``*i*``, ``_i_``), inline
   code and links keep their text only; stray ``**`` / ``__`` go. A bold lead-in
   (``**Adaptive Recovery.** Adaptive Recovery is new...``) is a title, not a sentence.
3. **Sentences.** A block is split after ``.``, ``!`` or ``?`` followed by a space and a
   capital, digit or quote, except after common abbreviations (``e.g.``, ``rev.``).
4. **Cleaning.** A leading label that names a kind of text rather than its content
   (``notes:``, ``product.summary:``, ``Note:``, ``Warning:``; :data:`GENERIC_LABELS`) is
   dropped when what follows is a sentence of its own; a label that is content
   (``Power supply: 24 VAC``) stays. Doubled punctuation (``..``, ``,.``, `` .``)
   becomes single.
5. **What may answer.** A statement of three words or more that ends with ``.`` or
   ``!``, or a ``Label: value`` line (a specification; it gets a full stop). Headings
   (no final punctuation), lead-ins ending with ``:`` and questions never answer.

A chunk cut out of a longer file starts and ends mid-sentence. ``cut_start`` drops the
first sentence and ``cut_end`` the last: the 400-token overlap of the chunks holds both
whole in the neighbouring chunks.
"""

from __future__ import annotations

import re

_BULLET = re.compile("^\\s*(?:[-*+\u2022\u2023\u25e6]|\\d{1,3}[.)])\\s+")
_HEADING = re.compile(r"^\s*#{1,6}\s+")
# A bold title that opens a block and ends with its own stop: "**Quiet display.** The..."
_LEAD_IN = re.compile(r"^(\*\*|__)(?P<title>[^*_]+?)(?:[.:!?]\1|\1[.:!?])\s*")
_INLINE = (
    (re.compile(r"!?\[([^\]]+)\]\([^)]*\)"), r"\1"),  # [text](url)
    (re.compile(r"`([^`]+)`"), r"\1"),
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),
    (re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<!\w)_(?=[^\s_])(.+?)(?<=[^\s_])_(?!\w)"), r"\1"),
    (re.compile(r"\*{2,}|_{2,}"), ""),  # what is left of an emphasis cut in two
)
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "etc", "vs", "approx", "rev", "no", "nos", "fig", "figs", "mr", "mrs"}
    | {"ms", "dr", "st", "inc", "ltd", "co", "jr", "sr"}
)
# Labels that name a kind of text, not its content: "notes: The sensor ...".
GENERIC_LABELS = frozenset(
    {"note", "notes", "summary", "description", "details", "detail", "comment"}
    | {"comments", "remark", "remarks", "text", "body", "content", "message", "info", "tip"}
    | {"tips", "hint", "hints", "important", "warning", "warnings", "caution"}
)
_LABEL = re.compile(
    r"^(?:[A-Za-z0-9_]+\.)*(?i:" + "|".join(sorted(GENERIC_LABELS)) + r")"
    r"\s*:\s+(?=[\"'(]?[A-Z0-9])"
)
_LABEL_LINE = re.compile(r"^[A-Z][^:.!?]{0,40}:\s+\S")
_PUNCTUATION = (
    (re.compile(r"\s+([,.;:!?])"), r"\1"),  # "word ." -> "word."
    (re.compile(r"(?<!\.)\.\.(?!\.)"), "."),  # "interval.." (an ellipsis stays)
    (re.compile(r"[,;:]+(?=[.!?])"), ""),  # "a,." -> "a."
    (re.compile(r"([!?])\.+"), r"\1"),
    (re.compile(r"([,;])\1+"), r"\1"),
)
MIN_WORDS = 3


def _blocks(text: str) -> list[tuple[str, str]]:
    """``(kind, text)`` per block; kind is ``heading``, ``item`` or ``text``."""
    blocks: list[tuple[str, list[str]]] = []
    kind, lines = "text", list[str]()
    for line in text.splitlines():
        heading, bullet = _HEADING.match(line), _BULLET.match(line)
        if not line.strip() or heading or bullet:
            if lines:
                blocks.append((kind, lines))
            kind, lines = "text", list[str]()
            if heading:
                blocks.append(("heading", [line[heading.end() :]]))
                continue
            if bullet:
                kind, line = "item", line[bullet.end() :]
        if line.strip():
            lines.append(line.strip())
    if lines:
        blocks.append((kind, lines))
    return [(k, " ".join(" ".join(ls).split())) for k, ls in blocks]


def _inline(text: str) -> str:
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    return text


def _merge_lists(blocks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A lead-in ending with ``:`` and the list items that continue it become one sentence.

    The items continue the lead-in when the first starts in lower case; they run until
    one ends with a stop (``the cost of labour ... product.``).
    """
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(blocks):
        kind, text = blocks[i]
        items: list[str] = []
        j = i + 1
        if kind == "text" and text.endswith(":"):
            while j < len(blocks) and blocks[j][0] == "item":
                items.append(blocks[j][1])
                j += 1
                if items[-1].endswith((".", "!", "?")):
                    break
        if items and items[0][:1].islower():
            parts = [t.rstrip(" ;,.") for t in items]
            out.append(("text", f"{text} {'; '.join(parts)}."))
            i = j
        else:
            out.append((kind, text))
            i += 1
    return out


def _split(block: str) -> list[str]:
    """A block cut into sentences (not after an abbreviation such as ``e.g.``)."""
    parts, start = [], 0
    for match in _BOUNDARY.finditer(block):
        before = block[start : match.start()].rsplit(None, 1)[-1].rstrip(".").lower()
        if before in _ABBREVIATIONS:
            continue
        parts.append(block[start : match.start()])
        start = match.end()
    parts.append(block[start:])
    return [p.strip() for p in parts if p.strip()]


def clean(sentence: str) -> str:
    """The sentence without a label naming a kind of text, and with single punctuation."""
    text = " ".join(sentence.split())
    label = _LABEL.match(text)
    if label and _answers(text[label.end() :]):
        text = text[label.end() :]
    for pattern, repl in _PUNCTUATION:
        text = pattern.sub(repl, text)
    return text.strip()


def _answers(sentence: str) -> bool:
    """Is this a statement that can answer (not a heading, lead-in or question)?"""
    if len(sentence.split()) < MIN_WORDS or sentence.endswith(("?", ":")):
        return False
    return sentence.endswith((".", "!")) or _LABEL_LINE.match(sentence) is not None


def sentences(text: str, cut_start: bool = False, cut_end: bool = False) -> list[str]:
    """The clean sentences of a chunk that can answer a question, in order."""
    found: list[tuple[bool, str]] = []  # (may answer, sentence)
    for kind, block in _merge_lists(_blocks(text)):
        lead = _LEAD_IN.match(block) if kind != "heading" else None
        if lead:
            found.append((False, lead.group("title")))
            block = block[lead.end() :]
        for part in _split(_inline(block)):
            found.append((kind != "heading", clean(part)))
    if cut_start and found:
        found.pop(0)
    if cut_end and found:
        found.pop()
    out = []
    for may_answer, sentence in found:
        if may_answer and _answers(sentence):
            out.append(sentence if sentence.endswith((".", "!")) else sentence + ".")
    return out
