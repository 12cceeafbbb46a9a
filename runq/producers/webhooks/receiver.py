"""The webhook receiver of one deployment: the core's parts, given this producer's Redis
and Celery app. Shared by the gateway's endpoint and `runq webhooks`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from runq.config.logging import register_secret
from runq.config.settings import Settings
from runq.errors import ConfigurationError
from runq.producers.webhooks.endpoints import read_secret
from runq.runs.batcher.queue import BatchQueue
from runq.runs.wakes import WakeQueue
from runq.runs.webhooks import SECRET_VAR, WebhookInbox, WebhookReceiver, WebhookVerifier

if TYPE_CHECKING:
    from runq.producers.client.sync import Client


def webhook_secret(settings: Settings) -> str:
    """The endpoint's signing secret (`OPENAI_WEBHOOK_SECRET`, else the file that
    `OPENAI_WEBHOOK_SECRET_FILE` names), or an error saying where to set it."""
    if settings.webhook_secret is not None:
        secret = settings.webhook_secret.get_secret_value()
    elif settings.webhook_secret_file is not None:
        secret = read_secret(settings.webhook_secret_file)
    else:
        raise ConfigurationError(
            f"no webhook secret: set {SECRET_VAR} to the signing secret of the webhook "
            "endpoint (the OpenAI dashboard shows it once, as whsec_...), or "
            f"{SECRET_VAR}_FILE to a file holding it (`runq webhooks register` writes one)"
        )
    register_secret(secret)  # never in a log line, even inside an error's text
    return secret


def secret_reloader(settings: Settings) -> Callable[[], str] | None:
    """How the receiver reads its secret again after a rotation: only from a file (a
    variable's value cannot change under a running process)."""
    if settings.webhook_secret is not None or settings.webhook_secret_file is None:
        return None
    return lambda: webhook_secret(settings)


def build_receiver(client: Client) -> WebhookReceiver:
    """A receiver on the client's Redis that wakes jobs through the wake queue: a `runs`
    worker runs the job's due poll in-process (`runs.wakes`). The token is the record's,
    so a second wake, or the safety poll after this one, is a stale no-op. A batch's
    delivery makes the batcher look at that batch at its next tick."""
    settings = client.settings
    verifier = WebhookVerifier(webhook_secret(settings), reload=secret_reloader(settings))
    wakes = WakeQueue(client.redis)
    return WebhookReceiver(
        verifier,
        WebhookInbox(client.redis),
        client.store,
        wakes.wake_poll,
        wake_batch=BatchQueue(client.redis).look_now,
    )
