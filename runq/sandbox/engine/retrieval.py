"""Lexical retrieval for file_search: BM25 over chunks, then sentence extraction.

BM25 (k1=1.2, b=0.75) ranks the chunks of the searched vector stores; the answer is
then built from sentences of the top chunks. A sentence supports the answer when it
contains at least ``max(min(2, n), ceil(n / 2))`` of the query's ``n`` distinct content terms
(lower-cased, stop words removed, a plural ``s`` stripped); when no sentence does, the
model says it could not find an answer instead of citing something irrelevant.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n{2,}|\n(?=[-*#]|\d+\.)")
STOP = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "tell",
        "please",
        "give",
        "know",
        "find",
        "get",
    ]
)


def terms(text: str) -> list[str]:
    out = []
    for word in _WORD.findall(text.lower()):
        if word in STOP:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.append(word)
    return out


def bm25(query: str, chunks: list[dict[str, Any]], top_k: int = 20) -> list[dict[str, Any]]:
    """The ``top_k`` chunks by BM25 score (score > 0 only), best first.

    Each chunk is a dict with at least ``text``; a ``score`` key is added to copies.
    """
    q = set(terms(query))
    if not q or not chunks:
        return []
    docs = [Counter(terms(c["text"])) for c in chunks]
    n = len(docs)
    avg = sum(sum(d.values()) for d in docs) / n or 1.0
    df = Counter(t for d in docs for t in q if t in d)
    k1, b = 1.2, 0.75
    scored = []
    for chunk, doc in zip(chunks, docs, strict=True):
        length = sum(doc.values())
        score = 0.0
        for t in q:
            tf = doc.get(t, 0)
            if not tf:
                continue
            idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg))
        if score > 0:
            scored.append({**chunk, "score": round(score, 6)})
    scored.sort(key=lambda c: -c["score"])
    return scored[:top_k]


def split_sentences(text: str) -> list[str]:
    parts = (p.strip(" \n\t-*#") for p in _SENTENCE.split(text))
    return [" ".join(p.split()) for p in parts if len(p.split()) >= 3]


def best_sentences(
    query: str, hits: list[dict[str, Any]], limit: int = 2
) -> list[tuple[str, dict[str, Any]]]:
    """Up to ``limit`` sentences that best support an answer, with the hit they come from."""
    q = set(terms(query))
    if not q:
        return []
    need = max(min(2, len(q)), (len(q) + 1) // 2)
    candidates: list[tuple[int, int, str, dict[str, Any]]] = []
    seen: set[str] = set()
    for rank, hit in enumerate(hits[:5]):
        for sentence in split_sentences(hit["text"]):
            if sentence in seen:
                continue
            seen.add(sentence)
            matched = len(q & set(terms(sentence)))
            if matched >= need:
                candidates.append((matched, rank, sentence, hit))
    if not candidates:
        return []
    candidates.sort(key=lambda c: (-c[0], c[1]))
    top = candidates[0][0]
    return [(s, h) for m, _, s, h in candidates[:limit] if m == top]
