"""Standard Webhooks signing, as OpenAI signs its webhooks: the secret, the body, the header.

Kept apart from the sender (:mod:`runq.sandbox.engine.webhooks`) and free of the rest
of the engine (ids aside), so the config can validate a secret and a URL without
importing the engine.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from typing import Any

from runq.sandbox.engine.ids import new_id

SECRET_PREFIX = "whsec_"


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ``ValueError`` (never echoing it) if bad."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("must start with 'whsec_' (as OpenAI issues webhook secrets)")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except ValueError:
        raise ValueError("must be 'whsec_' followed by base64") from None
    if not key:
        raise ValueError("must be 'whsec_' followed by a non-empty base64 key")
    return key


def check_url(url: str) -> None:
    """Refuse anything but an absolute ``http(s)://host`` URL (``ValueError``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64 HMAC-SHA256 of ``id.ts.body``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def event_body(event_type: str, data: dict[str, Any], created_at: int) -> bytes:
    """The JSON body of one event, with a fresh ``evt_`` id."""
    event = {
        "id": new_id("evt"),
        "object": "event",
        "created_at": created_at,
        "type": event_type,
        "data": data,
    }
    return json.dumps(event, separators=(",", ":")).encode()
