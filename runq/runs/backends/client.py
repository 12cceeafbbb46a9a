"""OpenAI clients for workers: no client-side retries, explicit timeouts, one per endpoint.

The `openai` package retries by itself (twice, sleeping up to 8 s, honouring
`retry-after` up to 120 s). Inside a worker that sleep holds a pool slot and multiplies
with runq's own retries, so workers always use `max_retries=0` and let the retry policy
re-schedule the step instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import openai

from runq.runs.classify import classify

F = TypeVar("F", bound=Callable[..., Any])

_clients: dict[tuple[str | None, str, float], openai.OpenAI] = {}
_lock = threading.Lock()


def get_client(base_url: str | None, api_key: str, timeout: float) -> openai.OpenAI:
    """A process-wide client per endpoint (connection pools are reused across tasks)."""
    key = (base_url, api_key, timeout)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = openai.OpenAI(
                base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout
            )
            _clients[key] = client
        return client


def reset_clients() -> None:
    """Forget pooled clients (after a fork: sockets must not be shared between processes)."""
    with _lock:
        _clients.clear()


def classified(func: F) -> F:
    """Turn any error of the wrapped backend call into a classified `BackendError`."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except openai.OpenAIError as exc:
            raise classify(exc) from exc

    return wrapper  # type: ignore[return-value]
