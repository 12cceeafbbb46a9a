"""The words that count for file_search, in documents and in questions.

A *term* is a lower-cased word or number that is not a stop word, with a plural ``s``
stripped (``filters`` -> ``filter``), so a question and a document meet on content
words only.

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

import re

_WORD = re.compile(r"[a-z0-9]+")
STOP = frozenset(
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


def terms(text: str) -> list[str]:
    """The terms of ``text``, in order (repeats kept, for term frequencies)."""
    out = []
    for word in _WORD.findall(text.lower()):
        if word in STOP:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.append(word)
    return out


def query_terms(question: str) -> list[str]:
    """The terms of a question, without the adverb of a ``how long``-style question word."""
    return terms(_HOW.sub(" ", question))


def wants_quantity(question: str) -> bool:
    """Does the question ask ``how long / many / much / ...``?"""
    return _HOW.search(question) is not None


def states_quantity(sentence: str) -> bool:
    """Does the sentence state a quantity: a number in digits or in words?"""
    return _QUANTITY.search(sentence) is not None
