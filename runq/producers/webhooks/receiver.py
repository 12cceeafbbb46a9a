"""The webhook receiver of one deployment: the core's parts, given this producer's Redis
and Celery app. Shared by the gateway's endpoint and `runq webhooks`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runq.config.logging import register_secret
from runq.config.settings import Settings
from runq.errors import ConfigurationError
from runq.runs.batcher.queue import BatchQueue
from runq.runs.wakes import WakeQueue
from runq.runs.webhooks import SECRET_VAR, WebhookInbox, WebhookReceiver, WebhookVerifier

if TYPE_CHECKING:
    from runq.producers.client.sync import Client


def webhook_secret(settings: Settings) -> str:
    """The endpoint's signing secret, or an error saying where to set it."""
    if settings.webhook_secret is None:
        raise ConfigurationError(
            f"no webhook secret: set {SECRET_VAR} to the signing secret of the webhook "
            "endpoint (the OpenAI dashboard shows it once, as whsec_...)"
        )
    secret = settings.webhook_secret.get_secret_value()
    register_secret(secret)  # never in a log line, even inside an error's text
    return secret


def build_receiver(client: Client) -> WebhookReceiver:
    """A receiver on the client's Redis that wakes jobs through the wake queue: a `runs`
    worker runs the job's due poll in-process (`runs.wakes`). The token is the record's,
    so a second wake, or the safety poll after this one, is a stale no-op. A batch's
    delivery makes the batcher look at that batch at its next tick."""
    verifier = WebhookVerifier(webhook_secret(client.settings))
    wakes = WakeQueue(client.redis)
    return WebhookReceiver(
        verifier,
        WebhookInbox(client.redis),
        client.store,
        wakes.wake_poll,
        wake_batch=BatchQueue(client.redis).look_now,
    )
