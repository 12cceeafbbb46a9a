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

A model link may also set model settings (`runs.model_settings`) that override the
job's own for requests on that link, e.g. `{ backend = "responses", model =
"gpt-5-mini", reasoning = { effort = "low" } }`, and a cost tier (`tier = "batch"`,
`runs.tiers`) that overrides the job's.

A model link names a backend, a model and optionally a `base_url` and the *name* of the
environment variable that holds its API key (keys never sit in configuration), plus its
own rate limits. `cache` answers with the result of an identical earlier job; `template`
answers with a configured message. A job without a chain has one link: its own backend
and model on the default endpoint.

Links come from the worker's own configuration, every step. A job record names its
chain and the index of the link in use, nothing more: anyone who can write one key to
Redis must not be able to choose the host a worker calls or the environment variable
whose value it sends as a key (docs/security.md).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

import redis

from runq.errors import ConfigurationError, InvalidJobError
from runq.runs import keys, model_settings, tiers
from runq.runs.job import JobSpec

MODEL, CACHE, TEMPLATE = "model", "cache", "template"
BACKENDS = ("responses", "assistants", "chat")
OWN_LINK = ""
"""The chain name a record holds for a job with no chain: its own backend and model,
on the worker's own endpoint (`OPENAI_BASE_URL`, `OPENAI_API_KEY`)."""


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
    # Model settings this link sends instead of the job's (a model link only).
    settings: dict[str, Any] = field(default_factory=dict, hash=False)
    # The cost tier of this link's requests (`runs.tiers`), over the job's own.
    tier: str | None = None

    @property
    def name(self) -> str:
        """What a result's `source` and `attempts` say: `backend:model`, `cache` or
        `template`. Never the host: a tenant reads it, and the operator's network is not
        the tenant's business."""
        if self.kind != MODEL:
            return self.kind
        return f"{self.backend}:{self.model}"

    @property
    def endpoint(self) -> str:
        """What the link's breaker and rate limiter are keyed by: its name and host, so
        one model served by two hosts has two breakers (and workers share each)."""
        return f"{self.name}@{self.base_url}" if self.base_url else self.name

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

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "link") -> Link:
        known = set(cls.__dataclass_fields__) - {"settings"}
        settings = {k: v for k, v in data.items() if k in model_settings.SETTINGS}
        data = {k: v for k, v in data.items() if k not in model_settings.SETTINGS}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigurationError(f"{where}: unknown field(s) {', '.join(unknown)}")
        link = cls(**data, settings=settings)
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
        _check_settings(link, where)
        _check_tier(link, where)
        return link


def _check_tier(link: Link, where: str) -> None:
    """A link's tier is checked with the configuration: a known tier its backend runs."""
    if link.tier is None:
        return
    if link.kind != MODEL:
        raise ConfigurationError(f"{where}: only a model link takes a tier")
    try:
        tiers.check(link.tier, backend=link.backend,
                    service_tier=link.settings.get("service_tier"))  # fmt: skip
    except InvalidJobError as err:
        raise ConfigurationError(f"{where}: {err}") from None


def _check_settings(link: Link, where: str) -> None:
    """A link's settings are checked with the configuration, like its limits."""
    if not link.settings:
        return
    if link.kind != MODEL:
        raise ConfigurationError(f"{where}: only a model link takes model settings")
    try:
        model_settings.check(link.settings)
        model_settings.refuse_unsupported(link.backend, link.settings)
    except InvalidJobError as err:
        raise ConfigurationError(f"{where}: {err}") from None


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
        if name == OWN_LINK:
            raise ConfigurationError("a chain needs a name (the empty name means no chain)")
        links = table.get("links") if isinstance(table, dict) else table
        if not isinstance(links, list) or not links:
            raise ConfigurationError(f"chain {name!r} needs a non-empty list of links")
        chains[name] = [
            Link.from_dict(dict(item), where=f"chain {name!r} link {i + 1}")
            for i, item in enumerate(links)
        ]
    return chains


@dataclass(frozen=True)
class Chain:
    """The links a job tries, in order, under the name its record keeps."""

    name: str
    links: tuple[Link, ...]

    @property
    def caches(self) -> bool:
        """Has a `cache` link: only then are this chain's answers worth keeping."""
        return any(link.kind == CACHE for link in self.links)

    def link(self, index: int) -> Link:
        if not 0 <= index < len(self.links):
            shown = repr(self.name) if self.name else "of the job's own model"
            raise ConfigurationError(
                f"the chain {shown} has no link {index + 1} (it has {len(self.links)})"
            )
        return self.links[index]


def chain_name(spec: JobSpec, default_chain: str | None) -> str:
    """The chain a new job follows: its own choice, else the worker's default, else none."""
    return spec.chain or default_chain or OWN_LINK


def resolve_chain(name: str, spec: JobSpec, chains: dict[str, list[Link]]) -> Chain:
    """The configured links of chain `name`: this worker's, whatever a record says.

    With no chain (`OWN_LINK`) the job has one link: its own backend and model, with
    neither a host nor a key variable, so the worker's endpoint and key are used.
    """
    if name == OWN_LINK:
        return Chain(OWN_LINK, (Link(backend=spec.backend, model=spec.model),))
    if name not in chains:
        known = ", ".join(sorted(chains)) or "none configured"
        raise ConfigurationError(f"unknown chain {name!r} (chains: {known})")
    return Chain(name, tuple(chains[name]))


def fingerprint(spec: JobSpec) -> str:
    """Identity of a question for the answer cache: tenant, normalized input and options.

    Whitespace is collapsed (so "Hi  there" and "Hi there" share an answer); the model
    is left out on purpose — the cache link stands in for any model. The tenant is in:
    one tenant's answers never answer another's questions.
    """
    text = spec.input if isinstance(spec.input, str) else json.dumps(spec.input, sort_keys=True)
    material: dict[str, Any] = {
        "tenant": spec.tenant,
        "input": " ".join(text.split()),
        "instructions": " ".join((spec.instructions or "").split()),
        "tools": sorted(spec.tools),
        "vector_store_ids": sorted(spec.vector_store_ids),
    }
    if spec.output_schema is not None:  # an answer is only reused for the same schema
        material["output_schema"] = spec.output_schema
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
