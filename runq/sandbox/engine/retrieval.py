"""Lexical retrieval for file_search: BM25 over chunks, then sentence extraction.

BM25 (k1=1.2, b=0.75) ranks the chunks of the searched vector stores by the question's
terms (:mod:`.terms`). The answer is then built from the clean sentences
(:mod:`.sentences`) of the top chunks. A sentence supports the answer when it contains
at least ``max(min(2, n), ceil(n / 2))`` of the question's ``n`` distinct terms; when no
sentence does, the model says it could not find an answer instead of citing something
irrelevant. Among the supporting sentences, those with the most terms come first, then,
for a ``how long / many / much`` question, those that state a quantity, then the better
ranked chunk, then the earlier sentence.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from runq.sandbox.engine.sentences import sentences
from runq.sandbox.engine.terms import query_terms, states_quantity, terms, wants_quantity


def bm25(query: str, chunks: list[dict[str, Any]], top_k: int = 20) -> list[dict[str, Any]]:
    """The ``top_k`` chunks by BM25 score (score > 0 only), best first.

    Each chunk is a dict with at least ``text``; a ``score`` key is added to copies.
    """
    q = set(query_terms(query))
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


def best_sentences(
    query: str, hits: list[dict[str, Any]], limit: int = 2
) -> list[tuple[str, dict[str, Any]]]:
    """Up to ``limit`` sentences that best support an answer, with the hit they come from.

    A hit's ``cut_start`` / ``cut_end`` say that its chunk starts or ends inside its file
    (see :func:`.sentences.sentences`).
    """
    q = set(query_terms(query))
    if not q:
        return []
    need = max(min(2, len(q)), (len(q) + 1) // 2)
    quantity = wants_quantity(query)
    candidates: list[tuple[int, bool, int, int, str, dict[str, Any]]] = []
    seen: set[str] = set()
    for rank, hit in enumerate(hits[:5]):
        found = sentences(hit["text"], hit.get("cut_start", False), hit.get("cut_end", False))
        for position, sentence in enumerate(found):
            if sentence in seen:
                continue
            seen.add(sentence)
            matched = len(q & set(terms(sentence)))
            if matched >= need:
                typed = quantity and states_quantity(sentence)
                candidates.append((matched, typed, rank, position, sentence, hit))
    if not candidates:
        return []
    candidates.sort(key=lambda c: (-c[0], not c[1], c[2], c[3]))
    top = candidates[0][:2]
    return [(c[4], c[5]) for c in candidates[:limit] if c[:2] == top]
