"""The backend's webhook endpoints, managed from runq: register a receiver, rotate its secret.

OpenAI delivers webhooks to the endpoints a project registers (`/v1/webhook_endpoints`,
`client.webhooks.create|list|update|delete|rotate_secret|test` in the `openai` client);
the sandbox serves the same API. Registering returns the endpoint's signing secret once,
and so does a rotation, so this module's first job is to put that secret where the
receiver reads it (`OPENAI_WEBHOOK_SECRET_FILE`, a 0600 file) without it passing through
a terminal or a log line.

Rotation without downtime: `rotate(keep_old=True)` keeps the old secret valid for 24
hours, during which the backend signs each delivery with both secrets; a receiver still
holding the old one verifies them, and one that reads its secret file picks the new one
up by itself (`runs.webhooks.WebhookVerifier` reads the file again when a delivery fails
its check). Without `keep_old`, deliveries signed with the new secret fail until the
receiver has it: they are retried by the backend, and the safety poll finds their jobs
in any case.

The backend is runq's own (`OPENAI_BASE_URL`, or the sandbox of a `runq up` in this
folder; `OPENAI_API_KEY`): a command chooses an endpoint, never a host or a key.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runq.errors import ConfigurationError
from runq.producers.backend_client import backend_client as producers_backend_client

if TYPE_CHECKING:
    import openai

    from runq.config.settings import Settings

# What runq consumes: the end of a background response, and of a batch (the batcher).
RUNQ_EVENT_TYPES = (
    "response.completed",
    "response.failed",
    "response.cancelled",
    "response.incomplete",
    "batch.completed",
    "batch.failed",
    "batch.expired",
    "batch.cancelled",
)
DEFAULT_NAME = "runq"


def backend_client(settings: Settings) -> openai.OpenAI:
    """A client for runq's configured backend, or an error saying how to name one."""
    return producers_backend_client(settings, purpose="manage webhook endpoints at")


def register(
    client: openai.OpenAI,
    url: str,
    *,
    name: str = DEFAULT_NAME,
    event_types: tuple[str, ...] = RUNQ_EVENT_TYPES,
) -> Any:
    """Register `url` for `event_types`; the endpoint, with its `signing_secret` (shown
    only this once).

    A URL registered already is refused: a second endpoint would send every event twice,
    signed with a secret the receiver does not hold, and the backend would retry each
    refused copy for hours. Its secret is what `rotate` renews."""
    for existing in client.webhooks.list():
        if existing.url == url:
            raise ConfigurationError(
                f"{url} is registered already, as {existing.id}: `runq webhooks rotate "
                f"{existing.id}` gives it a new secret, `runq webhooks remove "
                f"{existing.id}` deletes it"
            )
    return client.webhooks.create(url=url, name=name, event_types=list(event_types))  # type: ignore[arg-type]


def rotate(client: openai.OpenAI, endpoint_id: str, *, keep_old: bool) -> Any:
    """A new signing secret for the endpoint (in the result's `signing_secret`); with
    `keep_old` the backend signs with the old one too for 24 hours."""
    return client.webhooks.rotate_secret(endpoint_id, keep_old_secret_active_for_24_hours=keep_old)


def write_secret(path: Path, secret: str) -> None:
    """Put `secret` in `path`, readable by its owner only, replacing the file in one step
    (a receiver reading it never sees half a secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secret + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_secret(path: Path) -> str:
    """The secret kept in `path`, or an error naming the file and what is wrong."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ConfigurationError(
            f"cannot read the webhook secret file {str(path)!r} (OPENAI_WEBHOOK_SECRET_FILE): "
            f"{err.strerror or err}"
        ) from None
    if not text:
        raise ConfigurationError(
            f"the webhook secret file {str(path)!r} (OPENAI_WEBHOOK_SECRET_FILE) is empty"
        )
    return text
