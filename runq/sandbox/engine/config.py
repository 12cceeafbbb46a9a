"""Sandbox settings.

One dataclass, filled from ``RUNQ_SANDBOX_*`` environment variables by
:meth:`SandboxConfig.from_env` and overridden by command-line flags in
:mod:`runq.sandbox.server.cli`. The sandbox imports nothing from runq's ``config``
package: it must run on its own.

It lives in the engine, not beside the CLI, because the engine's state holds it and
reads it on every request (latency, limits, faults); the server only fills it in.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ENV_PREFIX = "RUNQ_SANDBOX_"


def parse_faults(spec: str | None) -> dict[str, float]:
    """Parse ``"429=0.1,500=0.05,hang=0.02"`` into ``{"429": 0.1, ...}``.

    Unknown kinds and probabilities outside [0, 1] are refused with ``ValueError`` so a
    typo in a chaos profile is loud, not silently ignored.
    """
    from runq.sandbox.engine.faults import (  # local import: faults imports nothing from here
        FAULT_FAMILIES,
        FAULT_KINDS,
    )

    profile: dict[str, float] = {}
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        kind, sep, prob = part.partition("=")
        kind = kind.strip()
        if not sep or kind not in FAULT_KINDS:
            raise ValueError(
                f"bad fault entry {part!r}: expected kind=probability with kind in "
                f"{', '.join(sorted(FAULT_KINDS))}"
            )
        value = float(prob)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"fault probability for {kind!r} must be within [0, 1]")
        profile[kind] = value
    for family in FAULT_FAMILIES:  # each family is one draw of its own dice
        if sum(profile.get(kind, 0.0) for kind in family) > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities of {', '.join(family)} add up to more than 1")
    return profile


@dataclass
class SandboxConfig:
    """Everything that shapes the sandbox's behaviour.

    Latency model: a response is ``queued`` for the first quarter of ``latency_ms``,
    ``in_progress`` until ``latency_ms`` (time to first token) plus its output tokens at
    ``tokens_per_second`` (0 means instantaneous), then terminal. Assistants runs take
    ``latency_ms`` per run step.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    latency_ms: int = 200
    tokens_per_second: float = 0.0
    # Added to every /v1 request before it is handled: the network and the API's front
    # end, which a real backend charges on each call (create, retrieve, submit, upload).
    request_latency_ms: int = 0
    rpm: int = 0  # requests per minute per API key; 0 = unlimited
    tpm: int = 0  # tokens per minute per API key; 0 = unlimited
    faults: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    api_keys: list[str] = field(default_factory=list)  # empty = any bearer key accepted
    hang_seconds: float = 600.0  # how long a "hang" fault holds the request
    run_expiry_seconds: float = 600.0  # a run waiting for tool outputs expires after this
    snapshot_path: str | None = None  # JSON snapshot: loaded at startup, saved on exit
    snapshot_interval_seconds: float = 30.0  # also save this often while serving; 0 = off
    # Limits on what a client's files may cost (docs/sandbox.md, "Limits"). OpenAI takes
    # files of up to 512 MB; the sandbox, which keeps them in memory, takes 50 MiB.
    max_upload_bytes: int = 50 * 1024 * 1024  # a file upload's size; 0 = no limit
    ingest_timeout_seconds: float = 30.0  # parsing one file, wall clock
    ingest_max_unpacked_bytes: int = 64 * 1024 * 1024  # a DOCX's zip members, inflated
    ingest_memory_mb: int = 2048  # the parsing process's address space
    models: list[str] = field(
        default_factory=lambda: ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-5-mini", "gpt-5"]
    )
    # Service tiers (docs/sandbox.md, "Batch API and service tiers"): a flex or priority
    # request's timeline is the default one times its multiplier; flex answers 429
    # ``resource_unavailable`` at this rate, drawn by the seeded dice.
    flex_latency_multiplier: float = 3.0
    priority_latency_multiplier: float = 0.5
    flex_unavailable_rate: float = 0.0
    # Batch API completion-time model, all times multiplied by ``batch_time_scale``:
    # validating, then in progress for base + per line, then finalizing. A batch still
    # running ``batch_window_seconds`` (unscaled) after its creation expires.
    batch_validating_seconds: float = 1.0
    batch_base_seconds: float = 5.0
    batch_seconds_per_line: float = 0.1
    batch_finalizing_seconds: float = 1.0
    batch_time_scale: float = 1.0
    batch_window_seconds: float = 24 * 3600.0

    # Webhooks (docs/sandbox.md, "Webhooks"): where the end of each background response
    # is POSTed, signed with the ``whsec_`` secret (never logged, not in the repr);
    # failed deliveries are retried ``webhook_max_attempts`` times in all, waiting
    # ``webhook_retry_base_seconds`` doubled after each failure; a ``webhook_delay``
    # fault sends ``webhook_delay_seconds`` late.
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_max_attempts: int = 8
    webhook_retry_base_seconds: float = 1.0
    webhook_delay_seconds: float = 5.0
    # Code interpreter (docs/sandbox.md, "Code interpreter"): a container expires after
    # this many idle minutes (its ``expires_after`` default); each execution's limits.
    container_idle_minutes: int = 20
    code_cpu_seconds: int = 10
    code_wall_seconds: float = 30.0
    code_memory_mb: int = 1024
    code_output_bytes: int = 65536

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse values no server can run with, naming the setting (ValueError)."""
        problem = self._problem()
        if problem is not None:
            raise ValueError(f"{problem[0]} {problem[1]}")

    def _problem(self) -> tuple[str, str] | None:
        if not 0 <= self.port <= 65535:
            return "port", f"must be within 0-65535 (got {self.port})"
        for name in _NOT_NEGATIVE:
            if getattr(self, name) < 0:
                return name, f"must not be negative (got {getattr(self, name)})"
        webhook_problem = _webhook_problem(self)
        if webhook_problem is not None:
            return webhook_problem
        if not 0.0 <= self.flex_unavailable_rate <= 1.0:
            rate = self.flex_unavailable_rate
            return "flex_unavailable_rate", f"must be within [0, 1] (got {rate})"
        return None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SandboxConfig:
        """Build a config from ``RUNQ_SANDBOX_*`` variables (defaults for the rest)."""
        env = os.environ if env is None else env
        cfg = cls()
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            try:
                setattr(cfg, f.name, _coerce(f.name, raw, getattr(cfg, f.name)))
            except ValueError as exc:
                raise ValueError(f"{ENV_PREFIX}{f.name.upper()}: {exc} (got {raw!r})") from None
        problem = cfg._problem()
        if problem is not None:
            raise ValueError(f"{ENV_PREFIX}{problem[0].upper()}: {problem[1]}")
        return cfg

    def replace(self, **changes: object) -> SandboxConfig:
        """A copy with ``changes`` applied, ignoring ``None`` values (unset CLI flags)."""
        given: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **given)


_NOT_NEGATIVE = (
    "latency_ms", "tokens_per_second", "request_latency_ms", "rpm", "tpm",
    "hang_seconds", "run_expiry_seconds", "snapshot_interval_seconds", "max_upload_bytes",
    "ingest_timeout_seconds", "ingest_max_unpacked_bytes", "ingest_memory_mb",
    "flex_latency_multiplier", "priority_latency_multiplier", "batch_validating_seconds",
    "batch_base_seconds", "batch_seconds_per_line", "batch_finalizing_seconds",
    "batch_time_scale", "batch_window_seconds",
    "container_idle_minutes", "code_cpu_seconds", "code_wall_seconds", "code_memory_mb",
    "code_output_bytes",
)  # fmt: skip


def _webhook_problem(cfg: SandboxConfig) -> tuple[str, str] | None:
    """What is wrong with the webhook settings; the secret's value is never echoed."""
    from runq.sandbox.engine.webhook_signing import check_url, decode_secret

    if cfg.webhook_max_attempts < 1:
        return "webhook_max_attempts", f"must be at least 1 (got {cfg.webhook_max_attempts})"
    for name in ("webhook_retry_base_seconds", "webhook_delay_seconds"):
        if getattr(cfg, name) < 0:
            return name, f"must not be negative (got {getattr(cfg, name)})"
    if cfg.webhook_secret is not None:
        try:
            decode_secret(cfg.webhook_secret)
        except ValueError as exc:
            return "webhook_secret", str(exc)
    if cfg.webhook_url is None:
        return None
    try:
        check_url(cfg.webhook_url)
    except ValueError as exc:
        return "webhook_url", str(exc)
    if cfg.webhook_secret is None:
        return "webhook_secret", "is required with webhook_url (deliveries are signed)"
    return None


def _coerce(name: str, raw: str, default: object) -> object:
    if name == "faults":
        return parse_faults(raw)
    if name in ("api_keys", "models"):
        return [item.strip() for item in raw.split(",") if item.strip()]
    if name == "snapshot_path":
        return raw
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    try:
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        kind = "an integer" if isinstance(default, int) else "a number"
        raise ValueError(f"must be {kind}") from None
    return raw
