"""One settings object for producers, workers, the gateway and the tools.

Values come, highest priority first, from keyword arguments, environment variables,
a `.env` file in the working folder, and an optional TOML file named by `RUNQ_CONFIG`
(its `[runq]` table uses the field names below). A bad value raises
`ConfigError` naming the environment variable to fix, never a bare pydantic trace.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

Backend = Literal["responses", "assistants", "chat"]
Mode = Literal["poll", "stream"]
BACKENDS: tuple[str, ...] = ("responses", "assistants", "chat")
MODES: tuple[str, ...] = ("poll", "stream")
# `runq metrics` listens here unless told otherwise (a constant, not a setting: the CLI
# shows it in --help without importing the metrics server).
METRICS_PORT = 9808


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the variable to set.

    It lives here (not in `runs.errors`) because `config` imports nothing of ours;
    `runs.errors.ConfigurationError` derives from it so one `except RunqError` still
    catches it.
    """


# Field name -> environment variable, for messages. Fields without an explicit alias
# read `RUNQ_<FIELD>`.
_ALIASES = {
    "redis_url": "REDIS_URL",
    "openai_api_key": "OPENAI_API_KEY",
    "openai_base_url": "OPENAI_BASE_URL",
}


def env_name(field: str) -> str:
    """The environment variable that sets `field`."""
    return _ALIASES.get(field, "RUNQ_" + field.upper())


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the `[runq]` table of the file named by `RUNQ_CONFIG`, if any."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("RUNQ_CONFIG")
        if not path:
            return {}
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"RUNQ_CONFIG points at {path!r}, which does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"RUNQ_CONFIG file {path!r} is not valid TOML: {exc}") from exc
        table = data.get("runq", {})
        if not isinstance(table, dict):
            raise ConfigError(f"[runq] in {path!r} must be a table")
        if "chains" in data:  # fallback chains live in top-level [chains.NAME] tables
            table = {**table, "chains": data["chains"]}
        return table


class Settings(BaseSettings):
    """Everything runq reads from its environment, with the defaults a newcomer gets."""

    model_config = SettingsConfigDict(
        env_prefix="RUNQ_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
    )

    # Connections. No REDIS_URL: the embedded launcher's Redis (see worker.launcher).
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    # Optional separate broker (e.g. amqp:// for RabbitMQ through kombu); job records,
    # events and results stay in Redis.
    broker_url: str | None = None
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")

    # Job defaults.
    model: str = "gpt-5-mini"
    backend: Backend = "responses"
    mode: Mode = "poll"
    poll_interval_min: float = Field(default=0.25, gt=0)
    poll_interval_max: float = Field(default=5.0, gt=0)
    job_deadline: float = Field(default=600.0, gt=0, description="seconds")
    result_expires: int = Field(default=7 * 24 * 3600, gt=0, description="seconds")
    max_tool_rounds: int = Field(default=8, ge=1)
    tool_errors_fail_job: bool = False
    tool_modules: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["examples.tools"])
    request_timeout: float = Field(default=30.0, gt=0, description="seconds per HTTP call")

    # Resilience: fallback chains (see runs.chains), breakers, global rate limits.
    chain: str | None = None
    chains: dict[str, Any] = Field(default_factory=dict)
    breaker_failures: int = Field(default=5, ge=0, description="0 disables breakers")
    breaker_open_seconds: float = Field(default=30.0, gt=0)
    rpm: float | None = Field(default=None, ge=0, description="requests/min per link")
    tpm: float | None = Field(default=None, ge=0, description="tokens/min per link")

    # Operations.
    home: Path = Path(".runq")
    visibility_timeout: int = Field(default=3600, gt=0, description="seconds")
    sweep_interval: float = Field(default=10.0, gt=0, description="seconds between sweeps")
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    # Celery task events feed Flower; without Flower they are a quarter of the Redis
    # commands per job (docs/benchmarks.md), so a deployment may switch them off.
    task_events: bool = True
    events_maxlen: int = Field(default=2000, ge=10)
    # Test mode: retries and backoff re-schedule with no wait (never used in production).
    test_mode: bool = False

    @field_validator("tool_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None

    @field_validator("openai_base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else None

    @model_validator(mode="after")
    def _check_poll_bounds(self) -> Settings:
        if self.poll_interval_min > self.poll_interval_max:
            raise ValueError(
                "RUNQ_POLL_INTERVAL_MIN must not exceed RUNQ_POLL_INTERVAL_MAX "
                f"({self.poll_interval_min} > {self.poll_interval_max})"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            _TomlSource(settings_cls),
            file_secret_settings,
        )

    @property
    def backend_configured(self) -> bool:
        """True when workers know which OpenAI-compatible server to talk to."""
        return bool(self.openai_api_key or self.openai_base_url)

    def api_key_value(self) -> str:
        """The API key for the client; a local server without auth accepts any key."""
        if self.openai_api_key is not None:
            return self.openai_api_key.get_secret_value()
        return "sandbox-no-key"


def _explain(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ()) if part != "__root__"]
        name = env_name(loc[0]) if loc else "settings"
        value = error.get("input")
        shown = "" if name == "OPENAI_API_KEY" else f" (got {value!r})"
        lines.append(f"{name}: {error['msg']}{shown}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment; raise `ConfigError` naming what is wrong."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
