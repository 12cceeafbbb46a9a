"""Structured outputs that extract from file_search results (docs/sandbox.md, "Structured
outputs"): the files answer, not the question; a label holding the field's words fills
it, from the best result first; a nullable field the files never name stays null; and
the JSON answer cites the file its values come from."""

from __future__ import annotations

import json
import time

import openai

from runq.sandbox.engine import structured
from runq.sandbox.engine.model import Reply, Segment, material
from runq.sandbox.engine.run_planner import assistants_text
from runq.sandbox.engine.transcript import Turn

SCHEMA = {
    "type": "object",
    "properties": {
        "model": {"type": ["string", "null"]},
        "weight_grams": {"type": ["number", "null"]},
        "battery": {"type": ["string", "null"]},
    },
    "required": ["model", "weight_grams", "battery"],
    "additionalProperties": False,
}
MANUAL = "Technical specifications\n- Model number: NH-T3\n- Weight: 142 g\n- Display: 3.5-inch"
SHEET = "Product model: NH-RS1.\nSpecifications battery: One CR2032 coin cell, included."


def test_a_label_holding_the_field_name_fills_it_from_the_best_text_first() -> None:
    assert structured.fill(SCHEMA, structured.Material([MANUAL, SHEET])) == {
        "model": "NH-T3", "weight_grams": 142, "battery": "One CR2032 coin cell, included",
    }  # fmt: skip
    assert structured.fill(SCHEMA, structured.Material([SHEET, MANUAL]))["model"] == "NH-RS1"


def test_a_nullable_field_the_material_never_names_is_null() -> None:
    text = "Orders ship in 3 to 5 business days. Nimbus Home answers by email."
    assert structured.fill(SCHEMA, structured.Material([text])) == {
        "model": None, "weight_grams": None, "battery": None,
    }  # fmt: skip
    # Not nullable: the next number still fills it, as before.
    required = {"type": "object", "properties": {"count": {"type": "integer"}},
                "required": ["count"]}  # fmt: skip
    assert structured.fill(required, structured.Material(["I have 3 cats"])) == {"count": 3}


def test_search_results_stand_in_for_the_question() -> None:
    ask = [Turn(role="user", kind="message", text="Give the model: and weight in grams")]
    assert material(ask, [{"text": MANUAL}]).texts == [MANUAL]
    assert material(ask, []).texts == ["Give the model: and weight in grams"]


def test_a_json_answer_from_file_search_is_grounded_in_the_file_and_cites_it(
    client: openai.OpenAI,
) -> None:
    uploaded = client.files.create(file=("sheet.txt", SHEET.encode()), purpose="assistants")
    store = client.vector_stores.create(name="one", file_ids=[uploaded.id])
    deadline = time.monotonic() + 30
    while client.vector_stores.retrieve(store.id).file_counts.in_progress:
        assert time.monotonic() < deadline, "the store never finished ingesting"
        time.sleep(0.05)
    reply = client.responses.create(
        model="gpt-5-mini",
        input="Extract from this document: model; weight grams; battery (the product battery).",
        tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
        text={"format": {"type": "json_schema", "name": "product", "schema": SCHEMA,
                         "strict": True}},
    )  # fmt: skip
    assert json.loads(reply.output_text) == {
        "model": "NH-RS1", "weight_grams": None, "battery": "One CR2032 coin cell, included",
    }  # fmt: skip
    message = next(item for item in reply.output if item.type == "message")
    (annotation,) = message.content[0].annotations  # type: ignore[union-attr]
    assert annotation.filename == "sheet.txt" and annotation.index == len(reply.output_text)


def test_an_assistants_json_answer_keeps_its_citation_without_a_marker() -> None:
    reply = Reply(segments=[Segment('{"model": "NH-RS1"}', "file_1", "sheet.txt")])
    text, (note,) = assistants_text(reply, markers=False)
    assert json.loads(text) == {"model": "NH-RS1"}
    assert note["file_citation"] == {"file_id": "file_1"}
    assert note["text"] == "" and note["start_index"] == note["end_index"] == len(text)
    marked, _ = assistants_text(reply)  # a text answer keeps its marker
    assert marked.endswith("【0:0†sheet.txt】")
