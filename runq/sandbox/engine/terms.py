"""The words that count for file_search, in documents and in questions.

A *term* is a lower-cased word or number that is not a stop word, reduced to its stem
by the Snowball English stemmer (PyStemmer): ``closed``, ``closing`` and ``closes`` are
all ``close``, ``refunds`` and ``refunded`` are ``refund``. A question and a document
then meet on content words whatever their inflection, as a question rarely repeats the
exact form its answer uses ("Does phone support close on Sunday?" / "Phone lines are
closed on Sundays"). Stop words are bm25s's English list plus the question and request
words (``what``, ``tell``, ``please``...) that name no content.

A question also says what kind of answer it wants, and some of its words only say
that. "How long is the warranty?" asks for a quantity; ``long`` is part of the
question word ``how long``, not a thing to look for. Counting it as a term made the
docx's "warranty of three years" look like half a match, and the question went
unanswered. So :func:`query_terms` drops the adverb of ``how long / many / much /
often / far / old / big / ...``, and :func:`wants_quantity` tells the answer
extraction to prefer a sentence that states one (:func:`states_quantity`): a number in
digits or in words.
"""

from __future__ import annotations

import functools
import re
from typing import Any

_WORD = re.compile(r"[a-z0-9]+")
# Words that name no content; bm25s's English stop words are added when it loads.
_OWN_STOP = frozenset(
    {"a", "about", "above", "after", "again", "all", "am", "an", "and", "any", "are"}
    | {"as", "at", "be", "because", "been", "before", "being", "below", "between", "both"}
    | {"but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each"}
    | {"few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here"}
    | {"hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself"}
    | {"just", "me", "more", "most", "my", "no", "nor", "not", "now", "of", "off", "on"}
    | {"once", "only", "or", "other", "our", "out", "over", "own", "same", "she", "should"}
    | {"so", "some", "such", "than", "that", "the", "their", "them", "then", "there"}
    | {"these", "they", "this", "those", "through", "to", "too", "under", "until", "up"}
    | {"very", "was", "we", "were", "what", "when", "where", "which", "while", "who"}
    | {"whom", "why", "will", "with", "would", "you", "your", "yours", "tell", "please"}
    | {"give", "know", "find", "get"}
)
# "how <adverb>" asks for a quantity; the adverb names no content.
QUANTITY_ADVERBS = frozenset(
    {"long", "many", "much", "often", "far", "old", "big", "large", "small", "soon"}
    | {"tall", "high", "wide", "deep", "heavy", "fast", "early", "late", "frequently"}
)
_HOW = re.compile(r"\bhow\s+(" + "|".join(sorted(QUANTITY_ADVERBS)) + r")\b", re.IGNORECASE)
_NUMBER_WORDS = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy "
    "eighty ninety hundred thousand million dozen half once twice"
)
_QUANTITY = re.compile(r"\d|\b(?:" + "|".join(_NUMBER_WORDS.split()) + r")\b", re.IGNORECASE)


@functools.cache
def stop_words() -> frozenset[str]:
    """The sandbox's stop words: its own list and bm25s's English one."""
    from bm25s.stopwords import STOPWORDS_EN

    return _OWN_STOP | frozenset(STOPWORDS_EN)


@functools.cache
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball stem of one lower-case word (``closing`` -> ``close``)."""
    stemmed: str = _stemmer().stemWord(word)
    return stemmed


def terms(text: str) -> list[str]:
    """The terms of ``text``, in order (repeats kept, for term frequencies)."""
    stop = stop_words()
    return [stem(word) for word in _WORD.findall(text.lower()) if word not in stop]


@functools.lru_cache(maxsize=4096)
def chunk_terms(text: str) -> tuple[str, ...]:
    """:func:`terms` of a chunk, remembered: every search re-reads the same chunks."""
    return tuple(terms(text))


def query_terms(question: str) -> list[str]:
    """The distinct terms of a question, in order, without a ``how long``-style adverb."""
    return list(dict.fromkeys(terms(_HOW.sub(" ", question))))


def wants_quantity(question: str) -> bool:
    """Does the question ask ``how long / many / much / ...``?"""
    return _HOW.search(question) is not None


def states_quantity(sentence: str) -> bool:
    """Does the sentence state a quantity: a number in digits or in words?"""
    return _QUANTITY.search(sentence) is not None
