"""Conversations in and out: transcripts, thread messages as turns, export (fakeredis)."""

from __future__ import annotations

import json
from types import SimpleNamespace as NS

import fakeredis
import pytest

from runq.errors import InvalidJobError
from runq.runs.conversations import migration
from runq.runs.conversations.record import ConversationStore


def test_a_transcript_becomes_a_conversation_and_comes_back_the_same() -> None:
    text = (
        '{"role": "system", "text": "Answer briefly."}\n'
        "\n"
        '{"role": "user", "text": "Hi", "files": ["file-1"]}\n'
        '{"role": "assistant", "text": "Hello", "citations": [{"file_id": "file-1"}]}\n'
    )
    record = migration.from_transcript(migration.parse_jsonl(text), conversation_id="chat-1")
    assert record.id == "chat-1" and record.instructions == "Answer briefly."
    assert [t["role"] for t in record.turns] == ["user", "assistant"]
    lines = [json.loads(line) for line in migration.to_jsonl(record).splitlines()]
    assert lines == [json.loads(line) for line in text.splitlines() if line]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('{"role": "user", "text": "ok"}\nnot json\n', "line 2 is not JSON"),
        ('{"role": "robot", "text": "beep"}\n', "transcript[0].role"),
        ('{"role": "user", "text": 3}\n', "transcript[0].text"),
        ('{"role": "user", "text": "x", "files": "file-1"}\n', "transcript[0].files"),
    ],
)
def test_a_bad_transcript_is_refused_naming_the_line(text: str, named: str) -> None:
    with pytest.raises(InvalidJobError, match=named.replace("[", r"\[").replace("]", r"\]")):
        migration.from_transcript(migration.parse_jsonl(text))


def test_an_empty_transcript_or_a_bad_id_is_refused() -> None:
    with pytest.raises(InvalidJobError, match="transcript"):
        migration.from_transcript([])
    with pytest.raises(InvalidJobError, match="conversation"):
        migration.from_transcript([{"role": "user", "text": "x"}], conversation_id="a b")


def test_an_assistants_message_keeps_its_text_files_and_citations() -> None:
    cited = NS(type="file_citation", text="the quote", start_index=4,
               file_citation=NS(file_id="file-a"), file_path=None)  # fmt: skip
    made = NS(type="file_path", text="sandbox:/chart.png", start_index=0,
              file_citation=None, file_path=NS(file_id="file-b"))  # fmt: skip
    message = NS(
        role="assistant",
        content=[
            NS(type="text", text=NS(value="See the quote.", annotations=[cited])),
            NS(type="image_file", image_file=NS(file_id="file-img")),
            NS(type="text", text=NS(value=" Chart.", annotations=[made])),
        ],
        attachments=[NS(file_id="file-att"), NS(file_id="file-img")],
    )
    turn = migration.thread_turn(message)
    assert turn["text"] == "See the quote. Chart."
    assert turn["files"] == ["file-img", "file-att"]
    assert [(c["file_id"], c["index"]) for c in turn["citations"]] == [
        ("file-a", 4),
        ("file-b", len("See the quote.")),
    ]


class FakeThreads:
    """Only what an import reads: `client.beta.threads.messages.list`."""

    def __init__(self, messages: list[NS]) -> None:
        self.asked: list[tuple[str, str]] = []
        self.beta = NS(threads=NS(messages=NS(list=self._list)))
        self._messages = messages

    def _list(self, thread_id: str, *, order: str, limit: int) -> list[NS]:
        self.asked.append((thread_id, order))
        return self._messages


def test_a_thread_import_reads_oldest_first_and_keeps_the_thread_for_its_link() -> None:
    messages = [NS(role="user", content=[NS(type="text", text=NS(value=f"m{n}", annotations=[]))],
                   attachments=None) for n in range(3)]  # fmt: skip
    api = FakeThreads(messages)
    record = migration.from_thread(api, "thread_1", base_url=None, tenant="acme")
    assert api.asked == [("thread_1", "asc")]
    assert [t["text"] for t in record.turns] == ["m0", "m1", "m2"]
    assert record.tenant == "acme"
    [key] = record.handles
    assert key.startswith("assistants@") and record.handle_for(key) == {"thread_id": "thread_1"}


def test_an_import_never_overwrites_a_conversation() -> None:
    store = ConversationStore(fakeredis.FakeRedis(), ttl=60, max_bytes=10_000)
    record = migration.from_transcript([{"role": "user", "text": "x"}], conversation_id="c1")
    migration.save_new(store, record)
    again = migration.from_transcript([{"role": "user", "text": "y"}], conversation_id="c1")
    with pytest.raises(InvalidJobError, match="exists already"):
        migration.save_new(store, again)
    assert store.load("c1", None).turns == [{"role": "user", "text": "x"}]
