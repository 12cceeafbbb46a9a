"""One settings object for producers, workers, the gateway and the tools.

Values come, highest priority first, from keyword arguments, environment variables,
a `.env` file in the working folder, and an optional TOML file named by `RUNQ_CONFIG`
(its `[runq]` table uses the field names below). A bad value raises `ConfigurationError`
naming the environment variable to fix.

Why the standard library and not pydantic-settings: every `runq` command reads these
settings before anything else, and pydantic-settings costs about 65 ms of imports, a
quarter of the start-up of a `runq ask` re-run that only reads Redis
(docs/benchmarks.md). The table is flat: a parser and a bound per field is all it needs.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from runq.errors import ConfigurationError

Backend = Literal["responses", "assistants", "chat"]
Mode = Literal["poll", "stream", "webhook"]
BACKENDS: tuple[str, ...] = ("responses", "assistants", "chat")
MODES: tuple[str, ...] = ("poll", "stream", "webhook")
# What a job does when another has its conversation (runq.runs.multitask).
MULTITASK_STRATEGIES: tuple[str, ...] = ("enqueue", "reject", "interrupt", "rollback")
LOG_FORMATS: tuple[str, ...] = ("auto", "json", "console")
# `runq metrics` listens here unless told otherwise (a constant, not a setting: the CLI
# shows it in --help without importing the metrics server).
METRICS_PORT = 9808
DOTENV_FILE = ".env"


class Secret:
    """A string that never shows itself in a repr, a log line or an error message."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# -- parsers: raw value (a string from the environment, or a TOML/Python value) -> typed --
Parser = Callable[[Any], Any]

_TRUE = {"1", "true", "yes", "on", "t", "y"}
_FALSE = {"0", "false", "no", "off", "f", "n"}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _optional_text(value: Any) -> str | None:
    """An empty value means unset, as an empty `REDIS_URL=` in a .env file does."""
    return None if value is None else _text(value) or None


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError("must be a number") from None


def _optional_number(value: Any) -> float | None:
    return None if value is None or value == "" else _number(value)


def _integer(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError("must be a whole number")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError("must be a whole number") from None


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError("must be true or false")


def _names(value: Any) -> list[str]:
    """A comma-separated string (environment) or a list of strings (TOML, Python)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple) and all(isinstance(part, str) for part in value):
        return list(value)
    raise ValueError("must be a comma-separated list of names")


def _table(value: Any) -> dict[str, Any]:
    """A table: JSON in the environment, a TOML table or a dict otherwise."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"must be a JSON object ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ValueError("must be a table (a JSON object in the environment)")
    return value


def _tenant_numbers(value: Any) -> dict[str, int]:
    """`name=n,name=n` (environment) or a table: whole numbers >= 1 by tenant name."""
    if isinstance(value, str):
        pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError("must be name=number pairs separated by commas, e.g. acme=3,beta=1")
        value = {name.strip(): number.strip() for name, number in pairs}
    if not isinstance(value, dict):
        raise ValueError("must be name=number pairs, e.g. acme=3,beta=1")
    numbers = {}
    for name, number in value.items():
        count = _integer(number)
        if count < 1:
            raise ValueError(f"{name}: must be at least 1, got {count}")
        numbers[str(name)] = count
    return numbers


def _path(value: Any) -> Path:
    if not isinstance(value, str | Path) or not str(value):
        raise ValueError("must be a path")
    return Path(value)


def _optional_path(value: Any) -> Path | None:
    return None if value is None or value == "" else _path(value)


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_KEY_PREFIX = re.compile(r"[A-Za-z0-9._/-]*")


def _bucket(value: Any) -> str | None:
    """An S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens."""
    text = _optional_text(value)
    if text is not None and not _BUCKET.fullmatch(text):
        raise ValueError("must be a bucket name (3-63 lowercase letters, digits, '.', '-')")
    return text


def _key_prefix(value: Any) -> str:
    """A key prefix such as `runq/files/`: plain characters, no leading `/`, no `..`."""
    text = _optional_text(value) or ""
    if not _KEY_PREFIX.fullmatch(text) or text.startswith("/") or ".." in text:
        raise ValueError("must be plain letters, digits, '.', '_', '-' and '/' (e.g. runq/)")
    return text


def _secret(value: Any) -> Secret | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, Secret) else Secret(_text(value))


def _one_of(*choices: str) -> Parser:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError("must be one of " + ", ".join(repr(c) for c in choices))
        return str(value)

    return parse


def _url(*schemes: str, strip_slash: bool = False) -> Parser:
    def parse(value: Any) -> str | None:
        text = _optional_text(value)
        if text is None:
            return None
        if not text.startswith(schemes):
            raise ValueError("must start with " + ", ".join(schemes[:-1]) + " or " + schemes[-1])
        return text.rstrip("/") if strip_slash else text

    return parse


def _bounded(parse: Parser, *, gt: float | None = None, ge: float | None = None) -> Parser:
    def checked(value: Any) -> Any:
        number = parse(value)
        if number is None:
            return None
        if gt is not None and not number > gt:
            raise ValueError(f"must be greater than {gt:g}")
        if ge is not None and not number >= ge:
            raise ValueError(f"must be at least {ge:g}")
        return number

    return checked


def setting(default: Any, parse: Parser, *, env: str | None = None, factory: bool = False) -> Any:
    """A settings field: its default, how to read a raw value, and its variable's name."""
    meta = {"parse": parse, "env": env}
    if factory:
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """Everything runq reads from its environment, with the defaults a newcomer gets.

    Build it with `load_settings()` (or `get_settings()` for the process-wide copy):
    constructing `Settings(...)` directly takes typed values and reads no environment.
    """

    # Connections. No REDIS_URL: the embedded launcher's Redis (see worker.launcher).
    redis_url: str | None = setting(None, _url("redis://", "rediss://", "unix://"), env="REDIS_URL")
    # Optional separate broker (e.g. amqp:// for RabbitMQ through kombu); job records,
    # events and results stay in Redis.
    broker_url: str | None = setting(None, _optional_text)
    openai_api_key: Secret | None = setting(None, _secret, env="OPENAI_API_KEY")
    openai_base_url: str | None = setting(
        None, _url("http://", "https://", strip_slash=True), env="OPENAI_BASE_URL"
    )

    # Job defaults.
    model: str = setting("gpt-5-mini", _text)
    backend: Backend = setting("responses", _one_of(*BACKENDS))
    mode: Mode = setting("poll", _one_of(*MODES))
    poll_interval_min: float = setting(0.25, _bounded(_number, gt=0))
    poll_interval_max: float = setting(5.0, _bounded(_number, gt=0))
    # Webhook mode (docs/webhooks.md): the signing secret of the webhook endpoint, read by
    # the receiver only (the openai client's own variable), and how long a waiting run
    # goes unlooked-at when no delivery comes (a lost webhook delays a job this long).
    webhook_secret: Secret | None = setting(None, _secret, env="OPENAI_WEBHOOK_SECRET")
    # ... or a file holding it (0600; `runq webhooks register|rotate` write it), which
    # the receiver reads again when a delivery fails its check: a rotation needs no restart.
    webhook_secret_file: Path | None = setting(
        None, _optional_path, env="OPENAI_WEBHOOK_SECRET_FILE"
    )
    safety_poll_interval: float = setting(60.0, _bounded(_number, gt=0))
    # ... multiplied by this after each look that finds the run still going (1: the same
    # interval every time), up to `safety_poll_max` (seconds).
    safety_poll_growth: float = setting(3.0, _bounded(_number, ge=1))
    safety_poll_max: float = setting(600.0, _bounded(_number, gt=0))
    job_deadline: float = setting(600.0, _bounded(_number, gt=0))  # seconds
    result_expires: int = setting(7 * 24 * 3600, _bounded(_integer, gt=0))  # seconds
    max_tool_rounds: int = setting(8, _bounded(_integer, ge=1))
    tool_errors_fail_job: bool = setting(False, _flag)
    # Double-texting (runs.multitask), and tool calls a person approves (runs.approvals):
    # unanswered for `approval_timeout` seconds, a call is denied. The webhook that says
    # an approval is asked comes from settings only, never from a job or a request.
    multitask: str = setting("enqueue", _one_of(*MULTITASK_STRATEGIES))
    approval_timeout: float = setting(3600.0, _bounded(_number, gt=0))
    approval_webhook_url: str | None = setting(None, _url("http://", "https://"))
    approval_webhook_secret: Secret | None = setting(None, _secret)
    # An answer that breaks the job's output schema (or is not JSON, or a refusal) is
    # asked again this many times on the same link, then the chain moves on.
    output_retries: int = setting(1, _bounded(_integer, ge=0))
    # The gateway sends a hash of the tenant as `safety_identifier` when a job sets none.
    safety_identifier_from_tenant: bool = setting(False, _flag)
    # Gateway limits (runq.producers.gateway.limits): open event streams in all and per
    # tenant (0: no limit), and the largest request body read, in bytes.
    gateway_max_streams: int = setting(1000, _bounded(_integer, ge=0))
    gateway_max_streams_per_tenant: int = setting(100, _bounded(_integer, ge=0))
    gateway_max_body_bytes: int = setting(1024 * 1024, _bounded(_integer, ge=1))
    tool_modules: list[str] = setting(list, _names, factory=True)  # e.g. myapp.tools
    # How tools that do not say run: "thread" (fast; a tool past its timeout is abandoned)
    # or "process" (killed at its timeout; a few hundred ms to start).
    tool_isolation: Literal["thread", "process"] = setting("thread", _one_of("thread", "process"))
    request_timeout: float = setting(30.0, _bounded(_number, gt=0))  # seconds per HTTP call
    # runq's own conversation records (runs.conversations): kept this long after their
    # last turn, at most this many bytes (the oldest turns are dropped past it), and a
    # replay carries at most the last N turns and about M tokens (truncation policy).
    conversation_ttl: int = setting(30 * 24 * 3600, _bounded(_integer, gt=0))  # seconds
    conversation_max_bytes: int = setting(1024 * 1024, _bounded(_integer, ge=1024))
    conversation_max_turns: int = setting(50, _bounded(_integer, ge=1))
    conversation_max_tokens: int = setting(32_000, _bounded(_integer, ge=1))
    # Files (runq.runs.files): a job's input files and the files its run produced are
    # capped per file and per job; produced files go to Redis unless RUNQ_FILES_DIR
    # names a directory (shared with the producers that read them) or
    # RUNQ_FILES_S3_BUCKET a bucket (keys <prefix><job id>/<sha256>/<name>; an endpoint
    # URL for S3-compatible servers such as MinIO; credentials from boto3's own chain).
    files_dir: Path | None = setting(None, _optional_path)
    files_s3_bucket: str | None = setting(None, _bucket)
    files_s3_prefix: str = setting("", _key_prefix)
    files_s3_endpoint_url: str | None = setting(None, _url("http://", "https://"))
    file_max_bytes: int = setting(10 * 1024 * 1024, _bounded(_integer, ge=1))
    job_files_max_bytes: int = setting(50 * 1024 * 1024, _bounded(_integer, ge=1))

    # Resilience: fallback chains (see runs.chains), breakers, global rate limits.
    chain: str | None = setting(None, _optional_text)
    chains: dict[str, Any] = setting(dict, _table, factory=True)
    breaker_failures: int = setting(5, _bounded(_integer, ge=0))  # 0 disables breakers
    breaker_open_seconds: float = setting(30.0, _bounded(_number, gt=0))
    rpm: float | None = setting(None, _bounded(_optional_number, ge=0))  # requests/min/link
    tpm: float | None = setting(None, _bounded(_optional_number, ge=0))  # tokens/min/link

    # Tenancy (runs.fairness, runs.budgets; docs/tenancy.md): new jobs start in weighted
    # round-robin order across tenants, at most `fair_window` admitted and not yet started
    # (0: twice the live workers' slots); caps bound a tenant's jobs in flight, rates its
    # starts and estimated tokens per minute (on top of the per-link limits); budgets
    # (JSON by tenant or `batch:<label>`) are reserved at admission with an estimate that
    # counts `budget_output_tokens` of output for a job that sets no max_output_tokens.
    fair_admission: bool = setting(True, _flag)
    # A worker's choice: an uncontended job is admitted by its push, without waiting for
    # a pump (runs.fairness explains why it is off by default).
    fair_admit_at_push: bool = setting(False, _flag)
    fair_window: int = setting(0, _bounded(_integer, ge=0))
    tenant_weights: dict[str, int] = setting(dict, _tenant_numbers, factory=True)
    tenant_caps: dict[str, int] = setting(dict, _tenant_numbers, factory=True)
    tenant_rpm: dict[str, int] = setting(dict, _tenant_numbers, factory=True)  # starts/min
    tenant_tpm: dict[str, int] = setting(dict, _tenant_numbers, factory=True)  # tokens/min
    budgets: dict[str, Any] = setting(dict, _table, factory=True)
    budget_output_tokens: int = setting(1024, _bounded(_integer, ge=1))

    # Operations.
    home: Path = setting(Path(".runq"), _path)
    visibility_timeout: int = setting(3600, _bounded(_integer, gt=0))  # seconds
    sweep_interval: float = setting(10.0, _bounded(_number, gt=0))  # seconds between sweeps
    log_format: Literal["auto", "json", "console"] = setting("auto", _one_of(*LOG_FORMATS))
    log_level: str = setting("INFO", _text)
    # Celery task events feed Flower; without Flower they are a quarter of the Redis
    # commands per job (docs/benchmarks.md), so a deployment may switch them off.
    task_events: bool = setting(True, _flag)
    # Messages a worker process reserves ahead (Celery's prefetch multiplier): a step
    # woken by a webhook waits behind at most this many per process (docs/webhooks.md).
    worker_prefetch: int = setting(1, _bounded(_integer, ge=1))
    # Threads of each `runs` worker's wake runner (runs.wakes): polls that are due now (a
    # webhook woke them, or the safety poll's time came) run there, one HTTP request each.
    wake_threads: int = setting(32, _bounded(_integer, ge=1))
    # Where that runner runs: `process` (a child interpreter of the worker, so the steps
    # that end jobs do not queue for the interpreter lock behind a burst of starts),
    # `thread` (the worker's main process), or `auto`: `process` unless the pool is
    # prefork, whose main process already runs no task (runq.worker.wake_process).
    wake_runner: Literal["auto", "process", "thread"] = setting(
        "auto", _one_of("auto", "process", "thread")
    )
    # Each worker process adds its metric increments up and sends them to Redis at most
    # this often, in seconds (runs.metrics_buffer); 0 sends every record at once.
    metrics_flush_interval: float = setting(1.0, _bounded(_number, ge=0))
    # Cost tiers (runs.tiers, docs/tiers.md): `auto`'s expected completion time per tier
    # (JSON {"batch": 3600, ...}) and its safety factor, whether auto may pick priority,
    # what a flex 429 resource_unavailable does ("standard": move on; "retry": stay on
    # flex), and each tier's price as a factor of standard.
    tier_expected_seconds: dict[str, Any] = setting(dict, _table, factory=True)
    tier_safety_factor: float = setting(2.0, _bounded(_number, ge=1))
    tier_auto_priority: bool = setting(False, _flag)
    flex_on_unavailable: Literal["standard", "retry"] = setting(
        "standard", _one_of("standard", "retry")
    )
    tier_price_factors: dict[str, Any] = setting(dict, _table, factory=True)
    # The batcher (runs.batcher): a batch is cut at this many lines or bytes (OpenAI's
    # limits are 50,000 and 200 MB), or when its oldest line waited this long; open
    # batches are looked at every `batch_poll_interval` seconds; the batcher runs every
    # `batch_tick` seconds somewhere in the fleet.
    batch_max_lines: int = setting(50_000, _bounded(_integer, ge=1))
    batch_max_bytes: int = setting(200 * 1024 * 1024, _bounded(_integer, ge=1024))
    batch_max_age: float = setting(60.0, _bounded(_number, gt=0))
    batch_poll_interval: float = setting(60.0, _bounded(_number, gt=0))
    batch_tick: float = setting(2.0, _bounded(_number, gt=0))

    events_maxlen: int = setting(2000, _bounded(_integer, ge=10))
    # Test mode: retries and backoff re-schedule with no wait (never used in production).
    test_mode: bool = setting(False, _flag)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @property
    def backend_configured(self) -> bool:
        """True when workers know which OpenAI-compatible server to talk to."""
        return bool(self.openai_api_key or self.openai_base_url)

    def api_key_value(self) -> str:
        """The API key for the client; a local server without auth accepts any key."""
        if self.openai_api_key is not None:
            return self.openai_api_key.get_secret_value()
        return "sandbox-no-key"


def env_name(name: str) -> str:
    """The environment variable that sets the field `name`."""
    for f in fields(Settings):
        if f.name == name:
            return f.metadata["env"] or "RUNQ_" + name.upper()
    raise KeyError(name)


# -- sources, lowest priority first ------------------------------------------------------
def _toml_values(dotenv: Mapping[str, str | None]) -> dict[str, Any]:
    """The `[runq]` table of the file named by `RUNQ_CONFIG`, plus its `[chains.*]` tables.

    `RUNQ_CONFIG` comes from the environment or, as every other variable, from `.env`:
    a worker started by `runq up` in the folder then reads the same file as the CLI.
    """
    path = os.environ.get("RUNQ_CONFIG") or dotenv.get("RUNQ_CONFIG")
    if not path:
        return {}
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigurationError(f"RUNQ_CONFIG points at {path!r}, which does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"RUNQ_CONFIG file {path!r} is not valid TOML: {exc}") from exc
    table = data.get("runq", {})
    if not isinstance(table, dict):
        raise ConfigurationError(f"[runq] in {path!r} must be a table")
    if "chains" in data:  # fallback chains live in top-level [chains.NAME] tables
        table = {**table, "chains": data["chains"]}
    unknown = sorted(set(table) - set(Settings.field_names()))
    if unknown:
        raise ConfigurationError(f"[runq] in {path!r} has unknown keys: {', '.join(unknown)}")
    return table


def _variables(environ: Mapping[str, str | None]) -> dict[str, Any]:
    """Field values found in a set of variables; names are matched case-insensitively."""
    upper = {name.upper(): value for name, value in environ.items() if value is not None}
    found = {}
    for name in Settings.field_names():
        variable = env_name(name)
        if variable in upper:
            found[name] = upper[variable]
    return found


def _dotenv() -> dict[str, str | None]:
    """The variables of `.env` in the working folder (none when there is no file)."""
    if not Path(DOTENV_FILE).is_file():
        return {}
    from dotenv import dotenv_values  # only when there is a file: it costs ~12 ms to import

    return dict(dotenv_values(DOTENV_FILE))


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment; raise `ConfigurationError` naming what is wrong."""
    unknown = sorted(set(overrides) - set(Settings.field_names()))
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(unknown)}")
    dotenv = _dotenv()
    raw = {**_toml_values(dotenv), **_variables(dotenv), **_variables(os.environ), **overrides}
    values, problems = {}, []
    for f in fields(Settings):
        if f.name not in raw:
            continue
        try:
            values[f.name] = f.metadata["parse"](raw[f.name])
        except ValueError as exc:
            shown = "" if f.metadata["parse"] is _secret else f" (got {raw[f.name]!r})"
            problems.append(f"{env_name(f.name)}: {exc}{shown}")
    if problems:
        raise ConfigurationError("invalid configuration:\n  " + "\n  ".join(problems))
    settings = Settings(**values)
    if settings.poll_interval_min > settings.poll_interval_max:
        raise ConfigurationError(
            "invalid configuration:\n  RUNQ_POLL_INTERVAL_MIN must not exceed "
            f"RUNQ_POLL_INTERVAL_MAX ({settings.poll_interval_min} > "
            f"{settings.poll_interval_max})"
        )
    if settings.safety_poll_interval < settings.poll_interval_min:
        raise ConfigurationError(
            "invalid configuration:\n  RUNQ_SAFETY_POLL_INTERVAL must be at least "
            f"RUNQ_POLL_INTERVAL_MIN ({settings.safety_poll_interval} < "
            f"{settings.poll_interval_min}): it is the long wait that covers a lost webhook"
        )
    _check_files_storage(settings)
    if settings.safety_poll_max < settings.safety_poll_interval:
        raise ConfigurationError(
            "invalid configuration:\n  RUNQ_SAFETY_POLL_MAX must be at least "
            f"RUNQ_SAFETY_POLL_INTERVAL ({settings.safety_poll_max} < "
            f"{settings.safety_poll_interval}): the safety poll grows up to it"
        )
    return settings


def _check_files_storage(settings: Settings) -> None:
    """Produced files go to one place; the S3 details need the bucket they are for."""
    if settings.files_dir is not None and settings.files_s3_bucket is not None:
        raise ConfigurationError(
            "invalid configuration:\n  RUNQ_FILES_DIR and RUNQ_FILES_S3_BUCKET are both set; "
            "produced files go to one place: unset one of them"
        )
    if settings.files_s3_bucket is None:
        for name in ("files_s3_prefix", "files_s3_endpoint_url"):
            if getattr(settings, name):
                raise ConfigurationError(
                    f"invalid configuration:\n  {env_name(name)} is set without "
                    "RUNQ_FILES_S3_BUCKET: name the bucket, or unset it"
                )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
