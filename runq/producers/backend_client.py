"""A producer's own client for runq's configured backend.

Some producer commands call the backend themselves rather than through a job: `runq
ask` uploads its corpus to a vector store, `runq webhooks endpoints` manages the
receiver's registration. They talk to the backend the workers use (`OPENAI_BASE_URL`,
or the sandbox of a `runq up` in this folder, and `OPENAI_API_KEY`); the command
chooses what to do there, never a host or a key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runq.errors import ConfigurationError

if TYPE_CHECKING:
    import openai

    from runq.config.settings import Settings


def backend_client(settings: Settings, *, purpose: str, max_retries: int = 2) -> openai.OpenAI:
    """A client for runq's configured backend, or an error that says how to name one.

    `purpose` completes "no backend to ..." in that error (`upload documents to`)."""
    import openai

    from runq.worker.discovery import resolve_base_url

    base_url = resolve_base_url(settings)
    if not base_url and settings.openai_api_key is None:
        raise ConfigurationError(
            f"no backend to {purpose}: set OPENAI_BASE_URL (or OPENAI_API_KEY), "
            "or run `runq up` in this folder first"
        )
    return openai.OpenAI(
        api_key=settings.api_key_value(),
        base_url=base_url,
        timeout=settings.request_timeout,
        max_retries=max_retries,
    )
