"""One attempt at one webhook delivery: a signed POST, and the receiver's status.

The network edge of webhooks, shared by the background sender
(:mod:`runq.sandbox.engine.webhooks`, which retries) and the endpoints API's ``test``
(one attempt, answered to the caller). Redirects are not followed: a 3xx is the
receiver's answer, as with OpenAI. A failure to get any answer raises (``OSError`` or
``http.client.HTTPException``); :func:`why_unreachable` words it for a person, never
with a secret in it (only keys reach this module, and they are never printed).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
import urllib.parse

from runq.sandbox.engine.webhook_signing import signature_header

USER_AGENT = "OpenAI/1.0 (+https://platform.openai.com/docs/webhooks)"
ATTEMPT_TIMEOUT_SECONDS = 10.0  # connect + reply, per attempt

# Failures an attempt can raise instead of returning a status.
UNREACHABLE = (OSError, http.client.HTTPException)


def post_signed(
    url: str,
    keys: list[bytes],
    webhook_id: str,
    body: bytes,
    timeout: float = ATTEMPT_TIMEOUT_SECONDS,
) -> int:
    """POST ``body`` to ``url`` signed now with each of ``keys``; the reply's HTTP status.

    Raises one of :data:`UNREACHABLE` when no reply arrives (refused, timed out...).
    """
    parts = urllib.parse.urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(keys, webhook_id, timestamp, body),
        "connection": "close",
    }
    conn_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    conn = conn_type(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=headers)
        reply = conn.getresponse()
        reply.read()
        return reply.status
    finally:
        conn.close()


def why_unreachable(error: BaseException, timeout: float = ATTEMPT_TIMEOUT_SECONDS) -> str:
    """Why an attempt got no reply, in a few words (``connection refused``...)."""
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError):
        return f"no reply within {timeout:g} s (timed out)"
    if isinstance(error, socket.gaierror):
        return "the host name could not be resolved"
    if isinstance(error, ssl.SSLError):
        return "the TLS handshake failed"
    if isinstance(error, (ConnectionResetError, http.client.HTTPException)):
        return "the connection was closed without a valid HTTP reply"
    return f"network error ({type(error).__name__})"
