"""The webhook receiver of one deployment: the core's parts, given this producer's Redis
and Celery app. Shared by the gateway's endpoint and `runq webhooks`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runq.config.celery import PRIORITY_WOKEN
from runq.config.logging import register_secret
from runq.config.settings import Settings
from runq.errors import ConfigurationError
from runq.runs.delays import DelayedSteps
from runq.runs.webhooks import SECRET_VAR, WebhookInbox, WebhookReceiver, WebhookVerifier

if TYPE_CHECKING:
    from celery import Celery

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


def enqueue_poll(app: Celery, job_id: str, token: int) -> None:
    """Send the job's due poll now: the webhook says its run has ended. The token is the
    record's, so a second wake, or the safety poll after this one, is a stale no-op."""
    app.send_task("runq.jobs.poll", args=[job_id, token], ignore_result=True,
                  priority=PRIORITY_WOKEN)  # fmt: skip


def build_receiver(client: Client) -> WebhookReceiver:
    """A receiver on the client's Redis that wakes jobs through the client's Celery app."""
    verifier = WebhookVerifier(webhook_secret(client.settings))
    return WebhookReceiver(
        verifier,
        WebhookInbox(client.redis),
        client.store,
        lambda job_id, token: enqueue_poll(client.app, job_id, token),
        DelayedSteps(client.redis),
    )
