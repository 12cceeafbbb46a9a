"""The Python API's conversation operations: import (an Assistants thread or a JSONL
transcript) and export, over runq's own records (`runs.conversations`).

    from runq import Client

    client = Client()
    conversation = client.import_conversation(thread_id="thread_abc")
    client.submit("Where were we?", backend="chat", conversation=conversation)
    print(client.export_conversation(conversation))  # JSONL

A thread is read from the Assistants-speaking server of runq's own settings: the
deployment's endpoint (`OPENAI_BASE_URL`, `OPENAI_API_KEY`), or one of the configured
chains' assistants links named by `link=` (its `base_url` and key variable). Nothing
the caller passes chooses a host or a key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runq.config.settings import Settings
from runq.errors import ConfigurationError, InvalidJobError
from runq.runs.conversations import migration
from runq.runs.conversations.record import Conversation, ConversationStore, check_id
from runq.worker.discovery import resolve_base_url

if TYPE_CHECKING:
    import openai
    import redis


def conversation_store(client: redis.Redis, settings: Settings) -> ConversationStore:
    return ConversationStore(
        client, ttl=settings.conversation_ttl, max_bytes=settings.conversation_max_bytes
    )


def assistants_client(settings: Settings, link: str | None) -> tuple[openai.OpenAI, str | None]:
    """A client for the configured Assistants-speaking server, and the link's own
    `base_url` (None: the deployment's endpoint), which names the link the thread stays
    valid for."""
    import openai

    from runq.runs.chains import parse_chains

    base_url, api_key, own_base = resolve_base_url(settings), settings.api_key_value(), None
    if link is not None:
        links = [
            found
            for chain in parse_chains(settings.chains).values()
            for found in chain
            if found.name == link and found.backend == "assistants"
        ]
        if not links:
            raise InvalidJobError(
                "link", f"no assistants link {link!r} in the configured chains (RUNQ_CHAINS)"
            )
        own_base = links[0].base_url
        base_url = own_base or base_url
        api_key = links[0].api_key(api_key)
    if not base_url and settings.openai_api_key is None:
        raise ConfigurationError(
            "no Assistants-speaking server configured: set OPENAI_BASE_URL (and "
            "OPENAI_API_KEY), or name a configured assistants link"
        )
    client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=settings.request_timeout)
    return client, own_base


def import_conversation(
    store: ConversationStore,
    settings: Settings,
    *,
    thread_id: str | None = None,
    transcript: list[Any] | str | None = None,
    conversation: str | None = None,
    tenant: str | None = None,
    link: str | None = None,
) -> Conversation:
    """Write a new runq conversation from a thread or a transcript (JSONL text or lines)."""
    if (thread_id is None) == (transcript is None):
        raise InvalidJobError("thread_id", "give a thread id or a transcript, not both")
    if transcript is not None:
        lines = migration.parse_jsonl(transcript) if isinstance(transcript, str) else transcript
        record = migration.from_transcript(lines, conversation_id=conversation, tenant=tenant)
    else:
        assert thread_id is not None
        client, base_url = assistants_client(settings, link)
        record = migration.from_thread(
            client, thread_id, base_url=base_url, conversation_id=conversation, tenant=tenant
        )
    return migration.save_new(store, record)


def export_conversation(store: ConversationStore, conversation: str, tenant: str | None) -> str:
    """The conversation's JSONL transcript (instructions first, then the turns)."""
    return migration.to_jsonl(store.load(check_id(conversation), tenant))
