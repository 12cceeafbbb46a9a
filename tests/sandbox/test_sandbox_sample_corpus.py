"""The sample corpus in examples/ through the sandbox's vector stores and file_search.

What `runq ask` does, with the official client over HTTP: upload the real files, index
them in a vector store, ask with the file_search tool. The README's example asks the
manual and the policy "How long is the warranty?"; the policy's three-year warranty
must come back, quoted and cited. Every sample question of examples/questions.txt must
be answered from the file examples/expected_sources.json names, in clean sentences.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import openai
import pytest
from sandbox_helpers import is_terminal, wait_until

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Assistants is deprecated

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DOCS = EXAMPLES / "docs"
SAMPLES = ["nimbus_t3_manual.pdf", "warranty_and_returns.docx", "faq.html"]
SAMPLES += ["release_notes.md", "support_and_shipping.txt", "rs1_sensor_datasheet.json"]
THREE_YEARS = "limited hardware warranty of three years from the date of original purchase."
# What a clean quoted sentence never holds: markup, doubled stops, a data key.
ARTIFACTS = re.compile(r"\*\*|__|\.\.(?!\.)|[,;:]\.|^\s*[-*#]|\bnotes?:", re.IGNORECASE)


def index(client: openai.OpenAI, names: list[str]) -> tuple[str, dict[str, str]]:
    """A completed vector store of the sample files ``names``; returns it and the file ids."""
    ids = {
        name: client.files.create(file=(name, (DOCS / name).read_bytes()), purpose="assistants").id
        for name in names
    }
    store = client.vector_stores.create(name="samples", file_ids=list(ids.values()))
    done = wait_until(
        lambda: client.vector_stores.retrieve(store.id), lambda s: s.status == "completed"
    )
    assert done.file_counts.completed == len(names)
    return store.id, ids


def ask(client: openai.OpenAI, store_id: str, question: str) -> Any:
    return client.responses.create(
        model="gpt-4o-mini",
        input=question,
        tools=[{"type": "file_search", "vector_store_ids": [store_id]}],
    )


def quoted(text: str, annotations: list[Any]) -> list[str]:
    """The cited sentences of a Responses answer (each annotation's index ends one)."""
    start, out = 0, []
    for annotation in annotations:
        out.append(text[start : annotation.index].strip())
        start = annotation.index
    return out


def test_the_readme_warranty_question_is_answered_from_the_docx(client: openai.OpenAI) -> None:
    store_id, ids = index(client, ["nimbus_t3_manual.pdf", "warranty_and_returns.docx"])
    answer = ask(client, store_id, "How long is the warranty?")
    assert [item.type for item in answer.output] == ["file_search_call", "message"]
    text = answer.output[1].content[0]
    assert THREE_YEARS in text.text
    assert {(a.file_id, a.filename) for a in text.annotations} == {
        (ids["warranty_and_returns.docx"], "warranty_and_returns.docx")
    }
    assert quoted(text.text, text.annotations)[0].endswith(THREE_YEARS)
    # the same store through Assistants: the same sentence, with its marker and citation
    assistant = client.beta.assistants.create(
        model="gpt-4o-mini",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store_id]}},
    )
    run = client.beta.threads.create_and_run(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "How long is the warranty?"}]},
    )
    wait_until(
        lambda: client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id),
        lambda r: r.status == "completed",
    )
    message = client.beta.threads.messages.list(run.thread_id).data[0]
    value = message.content[0].text  # type: ignore[union-attr]
    assert THREE_YEARS in value.value
    assert value.annotations[0].file_citation.file_id == ids["warranty_and_returns.docx"]  # type: ignore[union-attr]


def test_every_sample_question_is_answered_from_its_source(client: openai.OpenAI) -> None:
    store_id, ids = index(client, SAMPLES)
    names = {file_id: name for name, file_id in ids.items()}
    expected = json.loads((EXAMPLES / "expected_sources.json").read_text(encoding="utf-8"))
    questions = (EXAMPLES / "questions.txt").read_text(encoding="utf-8").split("\n")
    assert list(expected) == [q for q in questions if q]
    for question, want in expected.items():
        answer = ask(client, store_id, question)
        assert is_terminal(answer) and answer.status == "completed"
        text = answer.output[1].content[0]
        if want["file"] is None:
            assert text.text.startswith("I could not find an answer"), (question, text.text)
            assert text.annotations == []
            continue
        cited = {names[a.file_id] for a in text.annotations}
        assert cited == {want["file"]}, (question, text.text)
        assert want["phrase"] in text.text, (question, text.text)
        for sentence in quoted(text.text, text.annotations):
            assert sentence.endswith((".", "!")) and not sentence.endswith(".."), sentence
            assert not ARTIFACTS.search(sentence), sentence


@pytest.mark.parametrize(
    ("question", "source", "sentence"),
    [
        # inflected forms only: close/closed, Sunday/Sundays; "phone" is the subject
        (
            "Does phone support close on Sunday?",
            "support_and_shipping.txt",
            "Phone lines are closed on Sundays and on US federal holidays.",
        ),
        # a related term: the question's "delivery" is the policy's "shipping"
        (
            "What does express delivery cost?",
            "support_and_shipping.txt",
            "Express shipping takes 2 business days and costs $14.95 per order.",
        ),
    ],
)
def test_a_paraphrased_question_is_answered_from_its_file(
    client: openai.OpenAI, question: str, source: str, sentence: str
) -> None:
    """The answer's sentence shares no exact word with the question but its subject."""
    store_id, ids = index(client, SAMPLES)
    answer = ask(client, store_id, question)
    text = answer.output[1].content[0]
    assert quoted(text.text, text.annotations) == [sentence]
    assert [a.file_id for a in text.annotations] == [ids[source]]
