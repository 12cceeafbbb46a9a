"""Lexical retrieval for file_search: BM25 over chunks, then sentence extraction.

Ranking is bm25s's BM25 (Lucene variant, k1=1.2, b=0.75) over the chunks' stemmed terms
(:mod:`.terms`). A question's own stems weigh 1; the stems of its related terms
(:mod:`.related_terms`) weigh :data:`~.related_terms.RELATED_WEIGHT`, so "What does
express delivery cost?" still ranks the chunk that says "Express shipping ... costs",
while an exact match keeps the upper hand. ``ranking_options.ranker: "none"`` turns
that expansion off (exact stems only); the default rankers (``auto``,
``default-2024-11-15``, ``default_2024_08_21``) keep it. A raw BM25 score is unbounded;
the API's scores are in ``[0, 1]``, so :func:`unit_score` squashes it as ``s / (s + 1)``
(order kept), and ``score_threshold`` applies to that.

The answer is then built from the clean sentences (:mod:`.sentences`) of the top
chunks. A sentence supports the answer when it contains at least
``max(min(2, n), ceil(n / 2))`` of the question's ``n`` distinct terms (a term counts
when the sentence holds it or one of its related terms); when no sentence does, the
model says it could not find an answer instead of citing something irrelevant. Among
the supporting sentences, those with the most terms come first, then, for a ``how long
/ many / much`` question, those that state a quantity, then the better ranked chunk,
then the earlier sentence.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from runq.sandbox.engine.errors import bad_request
from runq.sandbox.engine.related_terms import expand, related
from runq.sandbox.engine.sentences import sentences
from runq.sandbox.engine.terms import (
    chunk_terms,
    query_terms,
    states_quantity,
    terms,
    wants_quantity,
)

K1, B = 1.2, 0.75
RANKERS = ("auto", "default-2024-11-15", "default_2024_08_21", "none")


@dataclass(frozen=True)
class Ranking:
    """``ranking_options``: which ranker, and the lowest unit score a result may have."""

    ranker: str = "auto"
    score_threshold: float = 0.0

    @classmethod
    def parse(cls, options: Any, param: str = "ranking_options") -> Ranking:
        """Validated ``ranking_options`` (``None`` = the defaults), or the API's 400."""
        if options is None:
            return cls()
        if not isinstance(options, dict):
            raise bad_request(f"Invalid '{param}': expected an object.", param)
        ranker = options.get("ranker") or "auto"
        if ranker not in RANKERS:
            raise bad_request(
                f"Invalid '{param}.ranker': expected one of {', '.join(RANKERS)}.",
                f"{param}.ranker",
            )
        threshold = options.get("score_threshold", 0.0)
        if threshold is None:
            threshold = 0.0
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise bad_request(
                f"Invalid '{param}.score_threshold': expected a number.",
                f"{param}.score_threshold",
            )
        if not 0.0 <= threshold <= 1.0:
            raise bad_request(
                f"Invalid '{param}.score_threshold': expected a number between 0 and 1.",
                f"{param}.score_threshold",
            )
        return cls(ranker, float(threshold))


def unit_score(bm25_score: float) -> float:
    """A BM25 score (unbounded) squashed into the API's [0, 1] range, order kept."""
    return round(bm25_score / (bm25_score + 1.0), 6)


class _IndexCache:
    """The last few bm25s indexes, by the identity of the chunks they cover.

    Indexing is the costly part of a search and the same store is searched again and
    again (every question of a batch); a store whose files change gets a new key.
    """

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, chunks: list[dict[str, Any]]) -> Any:
        if key is not None and key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        index = _build_index(chunks)
        if key is not None:
            self._items[key] = index
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return index


def _build_index(chunks: list[dict[str, Any]]) -> Any:
    import bm25s

    retriever = bm25s.BM25(k1=K1, b=B)
    retriever.index([list(chunk_terms(c["text"])) for c in chunks], show_progress=False)
    return retriever


_CACHE = _IndexCache()


def bm25(
    query: str,
    chunks: list[dict[str, Any]],
    top_k: int = 20,
    *,
    ranking: Ranking | None = None,
    cache_key: Hashable = None,
) -> list[dict[str, Any]]:
    """The ``top_k`` chunks by BM25 score (score > 0 and over the threshold), best first.

    Each chunk is a dict with at least ``text``; a ``score`` key (raw BM25) is added to
    copies. ``cache_key`` names this exact list of chunks, to reuse its index.
    """
    ranking = ranking or Ranking()
    q = query_terms(query)
    if not q or not chunks:
        return []
    weights = dict.fromkeys(q, 1.0) if ranking.ranker == "none" else expand(q)
    index = _CACHE.get(cache_key, chunks)
    scores = None
    for term, weight in weights.items():
        if term not in index.vocab_dict:
            continue
        part = index.get_scores([term]) * weight
        scores = part if scores is None else scores + part
    if scores is None:
        return []
    order = sorted(range(len(chunks)), key=lambda i: (-float(scores[i]), i))
    out = []
    for i in order[:top_k]:
        score = round(float(scores[i]), 6)
        if score <= 0 or unit_score(score) < ranking.score_threshold:
            break
        out.append({**chunks[i], "score": score})
    return out


@functools.lru_cache(maxsize=4096)
def _sentence_terms(sentence: str) -> frozenset[str]:
    return frozenset(terms(sentence))


def _matched(question: list[str], sentence: str) -> int:
    """How many question terms the sentence holds, itself or through a related term."""
    found = _sentence_terms(sentence)
    return sum(1 for t in question if t in found or related(t) & found)


def best_sentences(
    query: str, hits: list[dict[str, Any]], limit: int = 2
) -> list[tuple[str, dict[str, Any]]]:
    """Up to ``limit`` sentences that best support an answer, with the hit they come from.

    A hit's ``cut_start`` / ``cut_end`` say that its chunk starts or ends inside its file
    (see :func:`.sentences.sentences`).
    """
    q = query_terms(query)
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
            matched = _matched(q, sentence)
            if matched >= need:
                typed = quantity and states_quantity(sentence)
                candidates.append((matched, typed, rank, position, sentence, hit))
    if not candidates:
        return []
    candidates.sort(key=lambda c: (-c[0], not c[1], c[2], c[3]))
    top = candidates[0][:2]
    return [(c[4], c[5]) for c in candidates[:limit] if c[:2] == top]


def result_items(hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``file_search_call.results`` for a Responses output item (``include``)."""
    return [
        {
            "file_id": hit["file_id"],
            "filename": hit["filename"],
            "score": unit_score(hit["score"]),
            "text": hit["text"],
            "attributes": hit.get("attributes") or {},
        }
        for hit in hits
    ]
