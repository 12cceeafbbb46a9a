"""The sandbox ASGI application.

``create_app(config)`` wires the route modules (one per API family), the gateway
middleware (auth, faults, rate limits, accounting) and error handlers that turn every
failure into OpenAI's error shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from runq.sandbox.api import (
    admin,
    assistants,
    batches,
    chat,
    containers,
    conversations,
    files,
    models,
    responses,
    runs,
    vector_stores,
    webhook_endpoints,
)
from runq.sandbox.api.errors import EXCEPTION_HANDLERS
from runq.sandbox.api.gateway import Gateway
from runq.sandbox.engine import snapshot
from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.engine.state import SandboxState


def all_routes() -> list[BaseRoute]:
    """Every route, in matching order.

    A function looked up when :func:`create_app` runs, so that a wrapper (the benchmarks'
    probe server) can add read-only routes of its own without copying this module.
    """
    return [
        *responses.routes,
        *conversations.routes,
        *chat.routes,
        *assistants.routes,
        *runs.routes,
        *files.routes,
        *batches.routes,
        *containers.routes,
        *vector_stores.routes,
        *models.routes,
        *webhook_endpoints.routes,
        *admin.routes,
    ]


log = logging.getLogger("sandbox")


async def _save_periodically(state: SandboxState, path: str, interval: float) -> None:
    """Save every ``interval`` seconds while requests keep arriving (none: no write)."""
    saved_at_count = state.stats.total_requests()
    while True:
        await asyncio.sleep(interval)
        count = state.stats.total_requests()
        if count == saved_at_count:
            continue
        saved_at_count = count
        payload = snapshot.serialize(state)  # on the loop: a consistent store
        try:
            await asyncio.to_thread(snapshot.write_atomic, path, payload)
        except OSError as exc:
            log.warning("sandbox: cannot save snapshot %s: %s", path, exc)


def _lifespan(
    state: SandboxState,
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        path = state.config.snapshot_path
        interval = state.config.snapshot_interval_seconds
        saver = None
        if path and interval > 0:
            saver = asyncio.create_task(_save_periodically(state, path, interval))
        try:
            yield
        finally:
            if saver is not None:
                saver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await saver
            if path:
                snapshot.save(state, path)
            state.ingestor.shutdown()  # after the save, which keeps unparsed files
            state.containers.reset()  # the code interpreter's directories
            state.webhooks.close()

    return lifespan


def create_app(config: SandboxConfig | None = None) -> Starlette:
    """A fresh sandbox application with its own state.

    With ``config.snapshot_path`` the state is loaded from that file when it exists
    (here, so a bad file fails before the server binds) and saved to it at shutdown
    and every ``snapshot_interval_seconds`` (see :mod:`runq.sandbox.engine.snapshot`).
    """
    config = config or SandboxConfig.from_env()
    state = SandboxState(config)
    if config.snapshot_path:
        snapshot.load(state, config.snapshot_path)
    routes = all_routes()
    app = Starlette(
        routes=routes,
        lifespan=_lifespan(state),
        middleware=[Middleware(Gateway, state=state, routes=routes)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.sandbox = state
    return app
