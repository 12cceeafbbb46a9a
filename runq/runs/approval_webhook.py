"""The webhook that says an approval is asked: signed as OpenAI signs its own.

Configured by settings only (`RUNQ_APPROVAL_WEBHOOK_URL`, `RUNQ_APPROVAL_WEBHOOK_SECRET`,
a `whsec_<base64>` secret): nothing in a job or a request decides where it goes.

Delivery follows the Standard Webhooks spec, like OpenAI's webhooks: a POST of

    {"id": "evt_...", "object": "event", "type": "approval.requested",
     "created_at": 1795000000,
     "data": {"job_id", "call_id", "name", "arguments", "round", "deadline", "tenant",
              "kind", "server_label"}}

with the headers `webhook-id` (the event id), `webhook-timestamp` (epoch seconds) and
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` keyed by the
secret's decoded bytes; `openai.OpenAI().webhooks.unwrap(body, headers, secret=...)`
verifies it. The event id is the same for every attempt at one approval
(`evt_appr_<hash of job and call>`), so a receiver can drop duplicates: delivery is at
least once. The tool task of the waiting call hands it to a daemon thread of its worker
and ends, so the task frees its slot at once while the thread makes a few tries with a
short backoff (a slow or failing receiver never holds a worker slot); a call's delivery
that succeeded is not sent again (`runq:approvals:{job}:sent`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import redis
import structlog

from runq.errors import ConfigurationError
from runq.runs import keys
from runq.runs.approvals import EVENT_REQUESTED, Approval

log = structlog.get_logger("runq.approvals")

SECRET_PREFIX = "whsec_"
TRIES = 3
BACKOFF = 0.5  # seconds before the 2nd try, doubled for the 3rd
TIMEOUT = 5.0  # seconds per request


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (the secret itself is never echoed)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ConfigurationError("RUNQ_APPROVAL_WEBHOOK_SECRET must start with 'whsec_'")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except ValueError:
        raise ConfigurationError(
            "RUNQ_APPROVAL_WEBHOOK_SECRET must be 'whsec_' followed by base64"
        ) from None
    if not key:
        raise ConfigurationError("RUNQ_APPROVAL_WEBHOOK_SECRET has an empty key")
    return key


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature`: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def event_id(approval: Approval) -> str:
    digest = hashlib.sha256(f"{approval.job_id}|{approval.call_id}".encode()).hexdigest()
    return "evt_appr_" + digest[:32]


def body_of(approval: Approval, tenant: str | None, created_at: int) -> bytes:
    data: dict[str, Any] = {
        "job_id": approval.job_id,
        "call_id": approval.call_id,
        "name": approval.name,
        "arguments": approval.arguments,
        "round": approval.round,
        "deadline": approval.deadline,
        "tenant": tenant,
        "kind": approval.kind,
        "server_label": approval.server_label,
    }
    event = {"id": event_id(approval), "object": "event", "type": EVENT_REQUESTED,
             "created_at": created_at, "data": data}  # fmt: skip
    return json.dumps(event, separators=(",", ":")).encode()


class ApprovalWebhook:
    """Posts `approval.requested` to the configured URL, once per call that succeeds."""

    def __init__(self, client: redis.Redis, url: str, secret: str, *, ttl: int) -> None:
        self.redis = client
        self.url = url
        self.key = decode_secret(secret)
        self.ttl = ttl
        self.stopped = threading.Event()  # set: deliveries in their backoff give up

    def notify(self, approval: Approval, tenant: str | None) -> None:
        """Deliver (unless delivered before) from a daemon thread; the caller goes on."""
        thread = threading.Thread(
            target=self.deliver, args=(approval, tenant), name="runq-approval-webhook",
            daemon=True,
        )  # fmt: skip
        thread.start()

    def deliver(self, approval: Approval, tenant: str | None) -> bool:
        """Deliver (unless delivered before); True when the receiver answered 2xx.

        Backoff between tries: BACKOFF * 2**(n-1) seconds before try n+1."""
        sent_key = keys.approvals(approval.job_id) + ":sent"
        if self.redis.hexists(sent_key, approval.call_id):
            return True
        body = body_of(approval, tenant, int(time.time()))
        for attempt in range(TRIES):
            if attempt and self.stopped.wait(BACKOFF * 2 ** (attempt - 1)):
                return False
            if self._post(approval, body):
                pipe = self.redis.pipeline(transaction=True)
                pipe.hset(sent_key, approval.call_id, "1")
                pipe.expire(sent_key, self.ttl)
                pipe.execute()
                return True
        return False

    def _post(self, approval: Approval, body: bytes) -> bool:
        webhook_id = event_id(approval)
        timestamp = int(time.time())
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "content-type": "application/json",
                "user-agent": "runq-approvals",
                "webhook-id": webhook_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(self.key, webhook_id, timestamp, body),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as reply:
                ok = 200 <= reply.status < 300
        except (urllib.error.URLError, OSError, ValueError) as err:
            log.warning("approval.webhook_failed", job_id=approval.job_id,
                        call_id=approval.call_id, error=type(err).__name__)  # fmt: skip
            return False
        log.info("approval.webhook_sent", job_id=approval.job_id, call_id=approval.call_id, ok=ok)
        return ok
