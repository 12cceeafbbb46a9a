"""`runq webhooks`: receive OpenAI's webhooks without the gateway (uvicorn, 127.0.0.1 by
default: put it behind the TLS proxy that OpenAI reaches)."""

from __future__ import annotations

import sys

from runq.config.logging import configure_logging
from runq.config.settings import get_settings
from runq.producers.webhooks import PATH

LOCALHOST = "127.0.0.1"
DEFAULT_PORT = 8010


def run_webhooks(*, host: str = LOCALHOST, port: int = DEFAULT_PORT) -> int:
    import uvicorn

    from runq.producers.client.sync import Client, require_redis_url
    from runq.producers.webhooks.app import create_webhooks_app
    from runq.producers.webhooks.receiver import build_receiver

    settings = get_settings()
    configure_logging(settings, process="webhooks")  # JSON lines, secrets redacted
    client = Client(require_redis_url(settings, "wake jobs in"), settings)
    receiver = build_receiver(client)  # refuses to start without a usable secret
    app = create_webhooks_app(receiver, max_body_bytes=settings.gateway_max_body_bytes)
    print(f"runq webhooks: http://{host}:{port}{PATH}", file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    return 0
