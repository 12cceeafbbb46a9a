"""`runq gateway`: serve the gateway with uvicorn."""

from __future__ import annotations

import sys

from runq.config.settings import get_settings
from runq.errors import ConfigurationError
from runq.producers.gateway import auth

LOCALHOST = "127.0.0.1"


def gateway_tokens(*, demo: bool, host: str) -> dict[str, str]:
    """The tokens to accept; refuses to serve without any unless `demo` (on 127.0.0.1)."""
    tokens = auth.tokens_from_env()
    if demo:
        if host != LOCALHOST:
            raise ConfigurationError(
                f"--demo binds {LOCALHOST} only; drop --host {host} or configure "
                f"{auth.ENV_VAR}=token:tenant instead of --demo"
            )
        return {auth.DEMO_TOKEN: auth.DEMO_TENANT}
    if not tokens:
        raise ConfigurationError(
            f"no gateway tokens: set {auth.ENV_VAR}=token:tenant,token2:tenant2 "
            "(or run `runq gateway --demo` on this machine only)"
        )
    return tokens


def run_gateway(*, host: str = LOCALHOST, port: int = 8000, demo: bool = False) -> int:
    import uvicorn

    from runq.config.logging import configure_logging
    from runq.producers.client.sync import require_redis_url
    from runq.producers.gateway.app import create_app

    tokens = gateway_tokens(demo=demo, host=host)
    settings = get_settings()
    # One log format with the workers (JSON when asked), secrets redacted; uvicorn's own
    # loggers (log_config=None) pass through the same handler.
    configure_logging(settings, process="gateway")
    redis_url = require_redis_url(settings, "serve jobs from")
    app = create_app(tokens, redis_url=redis_url, settings=settings, demo=demo)
    print(
        f"runq gateway: http://{host}:{port}/ (OpenAPI at /docs); "
        f"{len(tokens)} token(s){' [demo]' if demo else ''}",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        app, host=host, port=port, log_config=None, log_level="info", timeout_graceful_shutdown=5
    )
    return 0
