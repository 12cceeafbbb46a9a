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
    from runq.sandbox.engine.faults import (
        FAULT_KINDS,  # local import: faults imports nothing from here
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
    if sum(profile.values()) > 1.0 + 1e-9:
        raise ValueError("fault probabilities add up to more than 1")
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
)  # fmt: skip


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
