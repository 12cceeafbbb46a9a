"""Standard Webhooks signing, as OpenAI signs its webhooks: the secret, the body, the header.

Kept apart from the sender (:mod:`runq.sandbox.engine.webhooks`) and free of the rest
of the engine (ids aside), so the config can validate a secret and a URL without
importing the engine. An endpoint registered through the API gets its secret from
:func:`new_secret`, is shown only :func:`secret_hint` of it afterwards, and during a
rotation's grace period is signed with two keys at once (:func:`signature_header`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import urllib.parse
from typing import Any

from runq.sandbox.engine.ids import new_id

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the HMAC key of a secret the sandbox issues
HINT_CHARACTERS = 4  # a hint shows this many characters of each end of the key's base64


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


def new_secret() -> str:
    """A fresh ``whsec_`` secret: the base64 of :data:`SECRET_BYTES` random bytes."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def secret_hint(secret: str) -> str:
    """``whsec_abcd...wxyz``: enough to tell two secrets apart, 48 of 256 bits at most."""
    body = secret[len(SECRET_PREFIX) :].rstrip("=")
    return f"{SECRET_PREFIX}{body[:HINT_CHARACTERS]}...{body[-HINT_CHARACTERS:]}"


def check_url(url: str) -> None:
    """Refuse anything but an absolute ``http(s)://host`` URL (``ValueError``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64 HMAC-SHA256 of ``id.ts.body``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(keys: list[bytes], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` of a delivery signed with each of ``keys``: one ``v1,<sig>``
    per key, space-separated, which the spec (and ``openai``'s check) accept if any matches.
    """
    return " ".join(sign(key, webhook_id, timestamp, body) for key in keys)


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
