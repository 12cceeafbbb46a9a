"""Related terms: the small, fixed thesaurus that lets a question find a paraphrase.

Stemming (:mod:`.terms`) joins the inflections of one word; it cannot join two words.
A user asks what something *costs* where the policy names a *fee*, or how to *fix* what
the manual says to *solve*. A real file_search embeds text and finds those by meaning;
the sandbox has no model, so it keeps a short list of groups of words that stand for
one another in product, support and policy documents, and nothing else. The list is
data, deterministic and reviewable: a group is added when a question in a test needs
it, never a generic synonym dictionary that would make unrelated sentences look alike.

A question term brings its group's other members as *related* terms. They rank chunks
at :data:`RELATED_WEIGHT` of an exact term's weight (an exact match still wins), and
a sentence containing one counts as containing the question term.
"""

from __future__ import annotations

import functools

from runq.sandbox.engine.terms import stem

RELATED_WEIGHT = 0.5

# Each line: words that a question may use for one another. Inflections need not be
# listed (the words are stemmed); derived words whose stem differs do ("delivery" is
# "deliveri", "deliver" is "deliv").
GROUPS: tuple[tuple[str, ...], ...] = (
    ("cost", "price", "fee", "charge", "pay", "payment"),
    ("buy", "purchase"),
    ("ship", "deliver", "delivery", "dispatch", "send"),
    ("parcel", "package", "shipment"),
    ("refund", "reimburse", "repay"),
    ("repair", "fix", "mend"),
    ("solve", "resolve", "troubleshoot"),
    ("broken", "defective", "faulty"),
    ("error", "fault", "fail", "failure"),
    ("problem", "issue", "trouble"),
    ("begin", "start"),
    ("finish", "end"),
    ("close", "shut"),
    ("help", "support", "assist", "care"),
    ("phone", "telephone", "call"),
    ("contact", "reach"),
    ("email", "mail"),
    ("battery", "cell"),
    ("warranty", "guarantee"),
    ("mount", "install", "fit"),
    ("remove", "uninstall", "detach"),
    ("connect", "link", "pair", "join"),
    ("manual", "guide", "instruction"),
    ("fast", "quick", "express", "rapid"),
    ("house", "home"),
    ("weigh", "weight"),
    ("size", "dimension"),
    ("update", "upgrade"),
    ("firmware", "software"),
)


@functools.cache
def _related() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for group in GROUPS:
        stems = {stem(word) for word in group}
        for member in stems:
            table.setdefault(member, set()).update(stems - {member})
    return {key: frozenset(values) for key, values in table.items()}


def related(term: str) -> frozenset[str]:
    """The stems that stand for ``term`` (a stem), itself excluded; often none."""
    return _related().get(term, frozenset())


def expand(query: list[str]) -> dict[str, float]:
    """Weights of the stems a query searches: its own at 1, their related ones lower.

    A stem both in the query and related to another query term keeps weight 1.
    """
    weights = dict.fromkeys(query, 1.0)
    for term in query:
        for other in sorted(related(term)):
            weights.setdefault(other, RELATED_WEIGHT)
    return weights
