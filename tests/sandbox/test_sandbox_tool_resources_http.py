"""The Assistants routes make stores from file ids, as OpenAI's do, over real HTTP.

`tool_resources.file_search.vector_stores` on an assistant or a thread, and a message's
file_search `attachments`, each give the thread a store its runs search.
"""

from __future__ import annotations

import openai
import pytest

from tests.conftest import wait_for

# The openai package warns on every Assistants call; the API is what is tested here.
pytestmark = pytest.mark.filterwarnings("ignore:The Assistants API is deprecated")


def upload(client: openai.OpenAI, name: str, text: str) -> str:
    return client.files.create(file=(name, text.encode()), purpose="assistants").id


def ingested(client: openai.OpenAI, store_id: str) -> None:
    wait_for(
        lambda: client.vector_stores.retrieve(store_id).file_counts.in_progress == 0,
        what="the store's files to be parsed",
    )


def test_an_assistants_vector_stores_helper_makes_a_store(client: openai.OpenAI) -> None:
    file_id = upload(client, "vault.txt", "The vault code is 4417.")
    assistant = client.beta.assistants.create(
        model="gpt-4o-mini",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [file_id]}]}},
    )
    search = assistant.tool_resources.file_search
    assert search is not None and len(search.vector_store_ids) == 1
    store_id = search.vector_store_ids[0]
    ingested(client, store_id)
    files = client.vector_stores.files.list(store_id).data
    assert [f.id for f in files] == [file_id]


def test_a_message_attachment_puts_the_file_in_the_threads_store(
    client: openai.OpenAI,
) -> None:
    file_id = upload(client, "owls.txt", "Owls hunt at night and sleep by day.")
    assistant = client.beta.assistants.create(model="gpt-4o-mini", tools=[{"type": "file_search"}])
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(
        thread.id,
        role="user",
        content="When do owls hunt?",
        attachments=[{"file_id": file_id, "tools": [{"type": "file_search"}]}],
    )
    assert message.attachments and message.attachments[0].file_id == file_id
    resources = client.beta.threads.retrieve(thread.id).tool_resources
    assert resources is not None and resources.file_search is not None
    (store_id,) = resources.file_search.vector_store_ids
    ingested(client, store_id)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed"
    answer = client.beta.threads.messages.list(thread.id, order="desc").data[0]
    text = answer.content[0].text  # type: ignore[union-attr]
    assert "night" in text.value
    assert any(a.type == "file_citation" for a in text.annotations)
