"""Fallback chains: the ordered links a job may be answered by.

A chain is named in configuration (the `[chains.NAME]` tables of the TOML file named
by `RUNQ_CONFIG`, or `RUNQ_CHAINS` as JSON, which wins):

    [chains.default]
    links = [
      { backend = "responses", model = "gpt-5" },
      { backend = "responses", model = "gpt-5-mini" },
      { backend = "chat", model = "llama-3.3", base_url = "http://vllm:8000/v1",
        api_key_env = "VLLM_API_KEY", rpm = 600 },
      { kind = "cache" },
      { kind = "template", message = "We are busy right now; please try again later." },
    ]

A model link names a backend, a model and optionally a `base_url` and the *name* of the
environment variable that holds its API key (keys never sit in configuration), plus its
own rate limits. `cache` answers with the result of an identical earlier job; `template`
answers with a configured message. A job without a chain has one link: its own backend
and model on the default endpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import redis

from runq.errors import ConfigurationError
from runq.runs import keys
from runq.runs.job import JobSpec

MODEL, CACHE, TEMPLATE = "model", "cache", "template"
BACKENDS = ("responses", "assistants", "chat")


@dataclass(frozen=True)
class Link:
    """One way to answer a job."""

    kind: str = MODEL
    backend: str = "responses"
    model: str = ""
    base_url: str | None = None
    api_key_env: str | None = None
    rpm: float | None = None
    tpm: float | None = None
    message: str | None = None

    @property
    def name(self) -> str:
        """What a result's `source` says: `backend:model`, `cache` or `template`."""
        if self.kind != MODEL:
            return self.kind
        name = f"{self.backend}:{self.model}"
        return f"{name}@{self.base_url}" if self.base_url else name

    @property
    def instant(self) -> bool:
        """Answers without a backend call (so it is worth trying even near the deadline)."""
        return self.kind != MODEL

    def api_key(self, default: str) -> str:
        if not self.api_key_env:
            return default
        value = os.environ.get(self.api_key_env)
        if not value:
            raise ConfigurationError(
                f"link {self.name} reads its API key from {self.api_key_env}, which is not set"
            )
        return value

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "link") -> Link:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigurationError(f"{where}: unknown field(s) {', '.join(unknown)}")
        link = cls(**data)
        if link.kind not in (MODEL, CACHE, TEMPLATE):
            raise ConfigurationError(f"{where}: kind must be model, cache or template")
        if link.kind == MODEL:
            if link.backend not in BACKENDS:
                raise ConfigurationError(
                    f"{where}: backend must be one of {', '.join(BACKENDS)}, got {link.backend!r}"
                )
            if not link.model:
                raise ConfigurationError(f"{where}: a model link needs a model")
        if link.kind == TEMPLATE and not link.message:
            raise ConfigurationError(f"{where}: a template link needs a message")
        _check_limits(link, where)
        return link


def _check_limits(link: Link, where: str) -> None:
    """A link's own `rpm` and `tpm` are numbers >= 0, checked with the configuration, so
    a typo fails the worker's start instead of every job that reaches the link."""
    for name in ("rpm", "tpm"):
        value = getattr(link, name)
        if value is None:
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or value < 0:
            raise ConfigurationError(
                f"{where}: {name} must be a number >= 0 (0: not limited), got {value!r}"
            )


def parse_chains(raw: dict[str, Any]) -> dict[str, list[Link]]:
    """Validate the configured chains; errors name the chain and the link."""
    chains: dict[str, list[Link]] = {}
    for name, table in raw.items():
        links = table.get("links") if isinstance(table, dict) else table
        if not isinstance(links, list) or not links:
            raise ConfigurationError(f"chain {name!r} needs a non-empty list of links")
        chains[name] = [
            Link.from_dict(dict(item), where=f"chain {name!r} link {i + 1}")
            for i, item in enumerate(links)
        ]
    return chains


def links_for(
    spec: JobSpec, chains: dict[str, list[Link]], default_chain: str | None
) -> list[Link]:
    """The links a job tries, in order."""
    name = spec.chain or default_chain
    if name:
        if name not in chains:
            known = ", ".join(sorted(chains)) or "none configured"
            raise ConfigurationError(f"unknown chain {name!r} (chains: {known})")
        return chains[name]
    return [Link(backend=spec.backend, model=spec.model)]


def fingerprint(spec: JobSpec) -> str:
    """Identity of a question for the answer cache: normalized input and options.

    Whitespace is collapsed (so "Hi  there" and "Hi there" share an answer); the model
    is left out on purpose — the cache link stands in for any model.
    """
    text = spec.input if isinstance(spec.input, str) else json.dumps(spec.input, sort_keys=True)
    material = {
        "input": " ".join(text.split()),
        "instructions": " ".join((spec.instructions or "").split()),
        "tools": sorted(spec.tools),
        "vector_store_ids": sorted(spec.vector_store_ids),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


class AnswerCache:
    """Answers of finished jobs, by fingerprint, for the `cache` link."""

    def __init__(self, client: redis.Redis, ttl: int) -> None:
        self.redis = client
        self.ttl = ttl

    def put(self, spec: JobSpec, answer: dict[str, Any]) -> None:
        self.redis.set(keys.answer_cache(fingerprint(spec)), json.dumps(answer), ex=self.ttl)

    def get(self, spec: JobSpec) -> dict[str, Any] | None:
        raw = self.redis.get(keys.answer_cache(fingerprint(spec)))
        return json.loads(raw) if raw is not None else None
