"""Which chunks and sentences answer a question: stemmed terms, related terms, quantities.

`runq ask nimbus_t3_manual.pdf warranty_and_returns.docx -q "How long is the warranty?"`
answered "I could not find an answer": ``long`` counted as a term the answer must
contain, and the docx's "warranty of three years" does not say "long". ``how long`` is
a question word: it asks for a quantity, and says nothing about the subject.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runq.sandbox.engine.documents import extract_text
from runq.sandbox.engine.related_terms import RELATED_WEIGHT, expand, related
from runq.sandbox.engine.retrieval import Ranking, best_sentences, bm25, unit_score
from runq.sandbox.engine.terms import query_terms, states_quantity, terms, wants_quantity

DOCS = Path(__file__).resolve().parents[2] / "examples" / "docs"
THREE_YEARS = (
    "The Nimbus T3 thermostat is covered by a limited hardware warranty of three years "
    "from the date of original purchase."
)


@pytest.mark.parametrize(
    ("question", "terms", "quantity"),
    [
        ("How long is the warranty?", ["warranti"], True),
        ("How many thermostats can I add?", ["thermostat", "add"], True),
        ("How much does express shipping cost?", ["express", "ship", "cost"], True),
        ("Is the cable long enough?", ["cabl", "long", "enough"], False),
        ("How does geofencing work?", ["geofenc", "work"], False),
    ],
)
def test_how_long_is_a_question_word(question: str, terms: list[str], quantity: bool) -> None:
    assert query_terms(question) == terms
    assert wants_quantity(question) is quantity


def test_inflected_forms_are_one_term() -> None:
    """Snowball stems join a word's forms; stop words (bm25s's and ours) are dropped."""
    assert terms("Phone lines are closed on Sundays") == terms("phone line closing on a Sunday")
    assert terms("refunds refunded refunding") == ["refund"] * 3
    assert terms("What is the and of it") == []


def test_related_terms_weigh_less_than_the_question_own() -> None:
    weights = expand(query_terms("What does express delivery cost?"))
    assert weights["deliveri"] == weights["express"] == weights["cost"] == 1.0
    assert weights["ship"] == weights["fee"] == RELATED_WEIGHT
    assert "express" in related("fast") and related("thermostat") == frozenset()


def test_bm25_ranks_a_paraphrase_and_an_exact_match_wins() -> None:
    chunks = hits(
        "Express shipping takes 2 business days and costs $14.95 per order.",
        "Express delivery costs $20 by courier.",
        "The thermostat has a dial.",
    )
    ranked = bm25("What does express delivery cost?", chunks)
    assert [h["file_id"] for h in ranked] == ["file-1", "file-0"]
    exact = bm25("What does express delivery cost?", chunks, ranking=Ranking(ranker="none"))
    assert [h["file_id"] for h in exact] == ["file-1", "file-0"]
    assert exact[1]["score"] < ranked[1]["score"]  # "ship" counts only with the expansion


def test_score_threshold_applies_to_the_unit_score() -> None:
    chunks = hits("The vault code is 4417.", "The vault opens at dawn, the vault.")
    ranked = bm25("vault code", chunks)
    top = unit_score(ranked[0]["score"])
    assert bm25("vault code", chunks, ranking=Ranking(score_threshold=top)) == ranked[:1]
    assert bm25("vault code", chunks, ranking=Ranking(score_threshold=1.0)) == []


def test_a_quantity_is_a_number_in_digits_or_words() -> None:
    assert states_quantity("a warranty of three years")
    assert states_quantity("a warranty of 12 months")
    assert not states_quantity("the warranty period")


def hits(*texts: str) -> list[dict[str, Any]]:
    return [
        {"file_id": f"file-{i}", "filename": f"f{i}.txt", "text": t} for i, t in enumerate(texts)
    ]


def test_the_docx_answers_how_long_the_warranty_is() -> None:
    """The reported failure, on the real file: the three-year sentence, then the next."""
    text = extract_text(
        "warranty_and_returns.docx", (DOCS / "warranty_and_returns.docx").read_bytes()
    )
    chunk = {"file_id": "file-docx", "filename": "warranty_and_returns.docx", "text": text}
    ranked = bm25("How long is the warranty?", [chunk])
    answer = best_sentences("How long is the warranty?", ranked)
    assert [sentence for sentence, _ in answer] == [
        THREE_YEARS,
        "Certified refurbished products carry a warranty of 12 months.",
    ]
    assert {hit["filename"] for _, hit in answer} == {"warranty_and_returns.docx"}


def test_a_stated_quantity_breaks_a_tie_for_a_how_question() -> None:
    found = best_sentences(
        "How long is the warranty?",
        hits("The warranty is transferable. The warranty lasts five years.", "Warranty terms."),
    )
    assert [s for s, _ in found] == ["The warranty lasts five years."]


def test_matched_terms_still_come_first() -> None:
    found = best_sentences(
        "How many sensors can one thermostat pair?",
        hits("Up to 6 sensors pair with one thermostat.", "The box holds 2 screws and a sensor."),
    )
    assert [s for s, _ in found] == ["Up to 6 sensors pair with one thermostat."]


def test_a_question_about_nothing_in_the_files_finds_nothing() -> None:
    assert best_sentences("How long is the warranty?", hits("The sensor is small.")) == []
    assert best_sentences("How long?", hits("It is long. It lasts 3 years.")) == []


def test_a_chunk_cut_inside_its_file_does_not_quote_its_partial_sentences() -> None:
    chunk = {
        "file_id": "f",
        "filename": "f.txt",
        "text": "warranty of three years. The warranty covers parts for 2 years. The warranty",
        "cut_start": True,
        "cut_end": True,
    }
    found = best_sentences("How long is the warranty?", [chunk])
    assert [s for s, _ in found] == ["The warranty covers parts for 2 years."]
