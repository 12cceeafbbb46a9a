"""Extractive answers quote clean sentences, never the marks of the file's format.

The artifacts pinned here are the ones the sandbox used to quote: ``interval..`` and
``notes: ...`` from a flattened JSON file, a ``**`` left over from Markdown bold, a
heading glued to the sentence under it, and an FAQ's question quoted as its answer.
"""

from __future__ import annotations

import pytest

from runq.sandbox.engine.sentences import clean, sentences


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        # what the sandbox quoted from rs1_sensor_datasheet.json
        (
            "notes: The RS1 room sensor runs on one CR2032 coin cell battery, which lasts up "
            "to 2 years with the default reporting interval..",
            "The RS1 room sensor runs on one CR2032 coin cell battery, which lasts up to 2 "
            "years with the default reporting interval.",
        ),
        ("product.summary: The sensor is small.", "The sensor is small."),
        ("Note: Switch the power off first.", "Switch the power off first."),
        ("The fee is 15 percent ,.", "The fee is 15 percent."),
        ("It stops here . Really!.", "It stops here. Really!"),
        ("Wait for it...", "Wait for it..."),  # an ellipsis is not doubled punctuation
        # a human label is content: kept
        ("Power supply: 24 VAC, 3 W maximum.", "Power supply: 24 VAC, 3 W maximum."),
        # a label that is content stays, whatever its spelling
        ("battery_life: Up to 2 years.", "battery_life: Up to 2 years."),
        ("Warranty: Three years from purchase.", "Warranty: Three years from purchase."),
        # a generic label in front of a fragment stays: the fragment alone says nothing
        ("notes: CR2032", "notes: CR2032"),
    ],
)
def test_clean(raw: str, cleaned: str) -> None:
    assert clean(raw) == cleaned


def test_a_bold_lead_in_is_a_title_and_no_star_is_left() -> None:
    """What the sandbox quoted from release_notes.md: ``Adaptive Recovery.** Adaptive...``."""
    text = (
        "### New\n\n"
        "- **Adaptive Recovery.** Adaptive Recovery is new in firmware 2.4.0: the thermostat\n"
        "  learns how long your home takes to warm up.\n"
        "- The app shows the *outdoor* temperature under **Menu > Settings**.\n"
    )
    assert sentences(text) == [
        "Adaptive Recovery is new in firmware 2.4.0: the thermostat learns how long your "
        "home takes to warm up.",
        "The app shows the outdoor temperature under Menu > Settings.",
    ]


def test_emphasis_inline_code_and_links_keep_their_text() -> None:
    text = "Press __Reset__ and run `runq up`, as [the guide](https://example.org) says."
    assert sentences(text) == ["Press Reset and run runq up, as the guide says."]


def test_an_emphasis_cut_in_two_leaves_no_marks() -> None:
    assert sentences("The filter lasts 300 hours.** The blower runs.") == [
        "The filter lasts 300 hours.",
        "The blower runs.",
    ]


def test_a_heading_never_glues_to_the_sentence_under_it() -> None:
    text = "# Heating\nThe boiler pressure must stay near 1.5 bar.\n\nSafety information\n\n"
    assert sentences(text) == ["The boiler pressure must stay near 1.5 bar."]


def test_questions_and_lead_ins_do_not_answer() -> None:
    text = (
        "How many thermostats can I add to one Nimbus account?\n\n"
        "Q: Can other people control the thermostat?\n\n"
        "You can add up to 12 thermostats to one Nimbus account.\n\n"
        "You will need the following:\n\n- A screwdriver\n\n- A pencil\n"
    )
    assert sentences(text) == ["You can add up to 12 thermostats to one Nimbus account."]


def test_a_lead_in_and_the_list_continuing_it_are_one_sentence() -> None:
    text = (
        "The warranty does not cover:\n\n"
        "- damage from accidents, liquid or fire;\n\n"
        "- coin cell batteries;\n\n"
        "- the cost of labour.\n\n"
        "- Making a claim\n\n"
        "To make a claim, open the app.\n"
    )
    assert sentences(text) == [
        "The warranty does not cover: damage from accidents, liquid or fire; coin cell "
        "batteries; the cost of labour.",
        "To make a claim, open the app.",
    ]


def test_list_bullets_and_numbers_are_not_quoted() -> None:
    text = "* The screen dims at night.\n+ The dial wakes it.\n2) Heating starts early.\n"
    assert sentences(text) == [
        "The screen dims at night.",
        "The dial wakes it.",
        "Heating starts early.",
    ]


def test_sentences_are_cut_at_their_boundaries_not_after_abbreviations() -> None:
    text = "Use a tool, e.g. A screwdriver. See rev. C of the manual! Done at 2.4 GHz now."
    assert sentences(text) == [
        "Use a tool, e.g. A screwdriver.",
        "See rev. C of the manual!",
        "Done at 2.4 GHz now.",
    ]


def test_a_specification_row_answers_with_a_full_stop() -> None:
    assert sentences("Technical specifications\n\nPower supply: 24 VAC, 3 W maximum\n") == [
        "Power supply: 24 VAC, 3 W maximum."
    ]


def test_a_chunk_cut_inside_its_file_drops_its_partial_sentences() -> None:
    text = "up to 2 years. The sensor reports every 5 minutes. The app warns you when"
    assert sentences(text) == ["up to 2 years.", "The sensor reports every 5 minutes."]
    assert sentences(text, cut_start=True, cut_end=True) == ["The sensor reports every 5 minutes."]
