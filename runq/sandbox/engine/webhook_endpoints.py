"""Webhook endpoints registered through the API: where events go, and what signs them.

OpenAI's webhook endpoints API (``client.webhooks.create|update|rotate_secret...``)
lets a project register endpoints, each with a URL, a name, the event types it wants
and its own ``whsec_`` secret. The sandbox keeps them here; the sender
(:mod:`runq.sandbox.engine.webhooks`) asks, when an event is emitted, which endpoints
are subscribed to it (:meth:`EndpointRegistry.subscribed`) and, at each attempt of a
delivery, where it goes and which keys sign it now (:meth:`EndpointRegistry.route`):
a URL changed or a secret rotated between two retries applies to the next attempt,
and a deleted endpoint gets nothing more.

**Rotation.** ``rotate_secret`` issues a new secret. With
``keep_old_secret_active_for_24_hours`` the previous one keeps signing too (each
delivery carries both signatures) until :data:`KEEP_OLD_SECRET_SECONDS` have passed,
so a receiver can switch secrets without losing a delivery; without it the old secret
stops at once. Only the secret just replaced is kept: a second rotation ends the first
one's grace.

**Plain http** is refused except for loopback hosts, since OpenAI only delivers over
https but the sandbox and its receivers usually share a machine.

The API runs on one event loop and the sender on its own threads, so every access goes
through one lock. Secrets are never in a ``repr``, a log line or the stats; endpoints
are in memory only (not in the snapshot file, which would then hold their secrets).
"""

from __future__ import annotations

import ipaddress
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runq.sandbox.engine.errors import not_found
from runq.sandbox.engine.ids import new_id
from runq.sandbox.engine.webhook_signing import decode_secret, new_secret, secret_hint

KEEP_OLD_SECRET_SECONDS = 24 * 3600.0  # read at each rotation: tests may shorten it
LOOPBACK_NAMES = frozenset(("localhost",))  # besides loopback addresses (127.0.0.0/8, ::1)


def plain_http_allowed(host: str) -> bool:
    """Whether ``http://host`` may be registered: only a loopback host."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot receive webhooks (``None`` if it can)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an absolute https:// URL with a host"
    if parts.scheme == "http" and not plain_http_allowed(parts.hostname):
        return (
            "webhook endpoints must use https; plain http is allowed only for loopback "
            "hosts (127.0.0.1, ::1, localhost)"
        )
    return None


@dataclass
class WebhookEndpoint:
    """One registered endpoint. ``secret`` signs; ``previous_secret`` too until
    ``previous_until`` (a keep-old rotation's grace)."""

    id: str
    url: str
    name: str
    event_types: list[str]
    created_at: int
    updated_at: int
    secret: str = field(repr=False)
    previous_secret: str | None = field(default=None, repr=False)
    previous_until: float = 0.0

    def keys(self, now: float) -> list[bytes]:
        """The HMAC keys that sign a delivery made at ``now``: the current one first."""
        keys = [decode_secret(self.secret)]
        if self.previous_secret is not None and now < self.previous_until:
            keys.append(decode_secret(self.previous_secret))
        return keys

    def to_json(self) -> dict[str, Any]:
        """The ``WebhookEndpoint`` object: no secret, only a hint of it."""
        return {
            "id": self.id,
            "object": "webhook_endpoint",
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "name": self.name,
            "url": self.url,
            "event_types": list(self.event_types),
            "signing_secret_hint": secret_hint(self.secret),
        }

    def with_secret(self) -> dict[str, Any]:
        """The ``WebhookEndpointWithSecret`` object (create and rotate only)."""
        return {**self.to_json(), "signing_secret": self.secret}


class EndpointRegistry:
    """The registered endpoints, oldest first; thread-safe.

    ``clock`` (``time.time`` by default) dates changes and ends rotation graces; a test
    may inject another.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._endpoints: dict[str, WebhookEndpoint] = {}

    def __len__(self) -> int:
        return len(self._endpoints)

    # -- what the API calls -------------------------------------------------------------
    def create(self, url: str, name: str, event_types: list[str]) -> WebhookEndpoint:
        now = int(self.clock())
        endpoint = WebhookEndpoint(
            new_id("whe"), url, name, list(event_types), now, now, new_secret()
        )
        with self._lock:
            self._endpoints[endpoint.id] = endpoint
        return endpoint

    def find(self, endpoint_id: str) -> WebhookEndpoint:
        """The endpoint with this id, or the real API's 404."""
        with self._lock:
            endpoint = self._endpoints.get(endpoint_id)
        if endpoint is None:
            raise not_found("webhook endpoint", endpoint_id)
        return endpoint

    def in_order(self) -> list[WebhookEndpoint]:
        """Every endpoint, oldest first."""
        with self._lock:
            return list(self._endpoints.values())

    def update(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        name: str | None = None,
        event_types: list[str] | None = None,
    ) -> WebhookEndpoint:
        """Change what is given; ``updated_at`` moves only if something differs."""
        endpoint = self.find(endpoint_id)
        changes: dict[str, Any] = {}
        if url is not None and url != endpoint.url:
            changes["url"] = url
        if name is not None and name != endpoint.name:
            changes["name"] = name
        if event_types is not None and set(event_types) != set(endpoint.event_types):
            changes["event_types"] = list(event_types)
        if changes:
            with self._lock:
                for attr, value in changes.items():
                    setattr(endpoint, attr, value)
                endpoint.updated_at = int(self.clock())
        return endpoint

    def delete(self, endpoint_id: str) -> None:
        self.find(endpoint_id)
        with self._lock:
            self._endpoints.pop(endpoint_id, None)

    def rotate(self, endpoint_id: str, keep_old: bool) -> WebhookEndpoint:
        """A new secret; the old one keeps signing for the grace period if ``keep_old``."""
        endpoint = self.find(endpoint_id)
        now = self.clock()
        with self._lock:
            endpoint.previous_secret = endpoint.secret if keep_old else None
            endpoint.previous_until = now + KEEP_OLD_SECRET_SECONDS if keep_old else 0.0
            endpoint.secret = new_secret()
            endpoint.updated_at = int(now)
        return endpoint

    def reset(self) -> None:
        """Forget every endpoint (``POST /sandbox/reset``)."""
        with self._lock:
            self._endpoints.clear()

    # -- what the sender calls ----------------------------------------------------------
    def subscribed(self, event_type: str) -> list[str]:
        """The ids of the endpoints that want ``event_type``, oldest first."""
        with self._lock:
            return [e.id for e in self._endpoints.values() if event_type in e.event_types]

    def route(self, endpoint_id: str) -> tuple[str, list[bytes]] | None:
        """Where a delivery to this endpoint goes now and the keys that sign it now;
        ``None`` once the endpoint is deleted."""
        with self._lock:
            endpoint = self._endpoints.get(endpoint_id)
            if endpoint is None:
                return None
            return endpoint.url, endpoint.keys(self.clock())
