"""Extraction keeps the blocks an answer needs: paragraphs, headings, list items, facts.

A PDF gives lines, so they are reflowed into paragraphs (a heading used to be glued to
the sentence under it); DOCX list paragraphs become ``- `` items; JSON becomes one fact
per block, a prose value without the key in front of it (``notes: ... interval..``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import docx

from runq.sandbox.engine.documents import _reflow, extract_text

DOCS = Path(__file__).resolve().parents[2] / "examples" / "docs"


def test_pdf_lines_reflow_into_paragraphs_headings_and_rows() -> None:
    page = "\n".join(
        [
            "Safety information",
            "The Nimbus T3 is a low-voltage thermostat designed for 24 VAC. Never connect it to",
            "a line-voltage system of 120 V or 240 V.",
            "Wiring the thermostat",
            "Connect each labelled wire to the terminal with the same letter as on the old base.",
            "Technical specifications",
            "Rc: 24 VAC power from the cooling transformer, in systems with two transformers ok",
            "C: common wire that completes the 24 VAC circuit",
        ]
    )
    assert _reflow(page).split("\n\n") == [
        "Safety information",
        "The Nimbus T3 is a low-voltage thermostat designed for 24 VAC. Never connect it to "
        "a line-voltage system of 120 V or 240 V.",
        "Wiring the thermostat",
        "Connect each labelled wire to the terminal with the same letter as on the old base.",
        "Technical specifications",
        "Rc: 24 VAC power from the cooling transformer, in systems with two transformers ok",
        "C: common wire that completes the 24 VAC circuit",
    ]


def test_the_sample_manual_keeps_its_headings_apart() -> None:
    text = extract_text("nimbus_t3_manual.pdf", (DOCS / "nimbus_t3_manual.pdf").read_bytes())
    blocks = text.split("\n\n")
    assert "Safety information" in blocks
    assert "Power supply: 24 VAC, 50/60 Hz, 3 W maximum; C wire required" in blocks
    assert any(b.startswith("The Nimbus T3 is a low-voltage thermostat") for b in blocks)


def test_docx_list_paragraphs_are_items() -> None:
    document = docx.Document()
    document.add_heading("What the warranty does not cover", level=1)
    document.add_paragraph("The warranty does not cover:")
    document.add_paragraph("damage from accidents;", style="List Bullet")
    document.add_paragraph("the cost of labour.", style="List Number")
    buffer = io.BytesIO()
    document.save(buffer)
    assert extract_text("policy.docx", buffer.getvalue()).split("\n\n") == [
        "What the warranty does not cover",
        "The warranty does not cover:",
        "- damage from accidents;",
        "- the cost of labour.",
    ]


def test_json_is_one_fact_per_block_and_notes_stand_alone() -> None:
    data = {
        "product": {"name": "Nimbus RS1", "weight_g": 18, "summary": "A small sensor."},
        "specifications": {"battery_life": "Up to 2 years.", "sensors": ["temperature", "PIR"]},
        "notes": ["The sensor lasts up to 2 years with the default reporting interval."],
        "steps": ["Pull the tab.", "Pair it in the app."],
        "empty": [],
        "missing": None,
    }
    assert extract_text("sheet.json", json.dumps(data).encode()).split("\n\n") == [
        "Product name: Nimbus RS1.",
        "Product weight g: 18.",
        "A small sensor.",
        "Specifications battery life: Up to 2 years.",  # no "..": the value had its stop
        "Specifications sensors: temperature, PIR.",
        "The sensor lasts up to 2 years with the default reporting interval.",
        "Steps: Pull the tab.",
        "Steps: Pair it in the app.",
    ]
