"""docker-compose.yml, Dockerfile and .env.example, checked without a Docker engine.

`docker compose config` is the real validator (docs/operations.md says to run it); these
tests pin the properties the production shape depends on, so that a careless edit fails
here: AOF and a volume on Redis, scalable workers, auth on Flower, the sandbox behind a
profile, every ${VAR} documented, every runq command line accepted by runq's parser.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from runq.config.settings import Settings, load_settings
from runq.errors import ConfigurationError
from runq.producers.cli import build_parser
from runq.producers.ops.flower import FlowerOptions, flower_command
from runq.sandbox.cli import build_parser as sandbox_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
RUNQ_SERVICES = ["worker-runs", "worker-tools", "flower", "gateway", "metrics", "sandbox"]
WORKERS = ["worker-runs", "worker-tools"]
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
# RUNQ_* variables read outside `Settings`.
NON_SETTINGS_VARS = {"RUNQ_FLOWER_BASIC_AUTH", "RUNQ_PRICES", "RUNQ_RUNS_CONCURRENCY",
                     "RUNQ_TOOLS_CONCURRENCY", "RUNQ_GATEWAY_TOKENS",
                     "RUNQ_METRICS_TOKEN"}  # fmt: skip


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: {line!r} is not NAME=value"
            values[name] = value
    return values


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, against `env`."""

    def sub(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        current = env.get(name, "")
        if op in (":-", "-") and not current:
            return arg
        if op in (":?", "?") and not current:
            raise ValueError(arg)
        return current

    return INTERPOLATION.sub(sub, value)


def command(service: str, env: dict[str, str] | None = None) -> list[str]:
    raw = SERVICES[service]["command"]
    argv = raw if isinstance(raw, list) else shlex.split(raw)
    return [interpolate(str(a), env or {}) for a in argv]


def test_services_and_profiles() -> None:
    assert {"redis", *RUNQ_SERVICES} <= set(SERVICES)
    assert SERVICES["sandbox"]["profiles"] == ["offline"]
    for name, service in SERVICES.items():
        if name != "sandbox":
            assert "profiles" not in service, f"{name} must run without a profile"


def test_redis_is_durable_and_healthchecked() -> None:
    redis = SERVICES["redis"]
    assert redis["image"].split(":")[1].startswith("7")
    argv = redis["command"]
    assert argv[0] == "redis-server"
    joined = " ".join(argv)
    assert "--appendonly yes" in joined
    assert "--appendfsync everysec" in joined
    assert "--maxmemory-policy noeviction" in joined
    (volume,) = redis["volumes"]
    name, target = volume.split(":")[:2]
    assert target == "/data" and name in COMPOSE["volumes"]
    assert "redis-cli" in redis["healthcheck"]["test"] and "ping" in redis["healthcheck"]["test"]
    assert "ports" not in redis  # not on the host network by default


@pytest.mark.parametrize("service", RUNQ_SERVICES)
def test_runq_services_find_redis_and_the_backend(service: str) -> None:
    env = SERVICES[service].get("environment") or {}
    if service == "sandbox":  # the sandbox needs neither
        return
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert "OPENAI_API_KEY" in env and "OPENAI_BASE_URL" in env
    assert env["RUNQ_LOG_FORMAT"] == "json"
    assert SERVICES[service]["depends_on"]["redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", WORKERS)
def test_workers_scale(service: str) -> None:
    worker = SERVICES[service]
    assert "ports" not in worker and "container_name" not in worker
    assert "hostname" not in worker  # Celery node names must differ per container


def test_no_service_pins_a_container_name() -> None:
    assert [n for n, s in SERVICES.items() if "container_name" in s] == []


def test_worker_commands_take_their_queue() -> None:
    parser = build_parser()
    runs = parser.parse_args(command("worker-runs")[1:])
    tools = parser.parse_args(command("worker-tools")[1:])
    assert (runs.command, runs.queues, runs.concurrency) == ("worker", "runs", 64)
    assert runs.pool == "threads"  # steps wait on HTTP
    assert (tools.command, tools.queues, tools.pool) == ("worker", "tools", "prefork")
    custom = parser.parse_args(command("worker-runs", {"RUNQ_RUNS_CONCURRENCY": "32"})[1:])
    assert custom.concurrency == 32


def test_flower_requires_basic_auth() -> None:
    flower = SERVICES["flower"]
    args = build_parser().parse_args(command("flower")[1:])
    assert args.command == "flower" and not args.demo and args.basic_auth is None
    assert args.address == "0.0.0.0" and args.port == 5555
    auth = flower["environment"]["RUNQ_FLOWER_BASIC_AUTH"]
    # Unset, compose refuses to start anything, with a message naming the variable.
    with pytest.raises(ValueError, match="RUNQ_FLOWER_BASIC_AUTH"):
        interpolate(auth, {})
    assert interpolate(auth, {"RUNQ_FLOWER_BASIC_AUTH": "ops:pw"}) == "ops:pw"
    assert "5555" in flower["ports"][0]


def test_gateway_and_metrics_require_their_credentials() -> None:
    tokens = SERVICES["gateway"]["environment"]["RUNQ_GATEWAY_TOKENS"]
    with pytest.raises(ValueError, match="RUNQ_GATEWAY_TOKENS"):
        interpolate(tokens, {})
    scrape = SERVICES["metrics"]["environment"]["RUNQ_METRICS_TOKEN"]
    with pytest.raises(ValueError, match="RUNQ_METRICS_TOKEN"):
        interpolate(scrape, {})
    assert interpolate(scrape, {"RUNQ_METRICS_TOKEN": "t"}) == "t"
    # Both keep the shared environment (Redis, the backend) beside their own.
    for service in ("gateway", "metrics"):
        assert SERVICES[service]["environment"]["REDIS_URL"] == "redis://redis:6379/0"


def test_webhook_mode_is_a_setting_away_and_only_the_gateway_holds_its_secret() -> None:
    shared = SERVICES["worker-runs"]["environment"]
    assert interpolate(shared["RUNQ_MODE"], {}) == "poll"
    assert interpolate(shared["RUNQ_MODE"], {"RUNQ_MODE": "webhook"}) == "webhook"
    secret = SERVICES["gateway"]["environment"]["OPENAI_WEBHOOK_SECRET"]
    assert interpolate(secret, {"OPENAI_WEBHOOK_SECRET": "whsec_x"}) == "whsec_x"
    holders = [
        n for n, s in SERVICES.items() if "OPENAI_WEBHOOK_SECRET" in (s.get("environment") or {})
    ]
    assert holders == ["gateway"]


def test_metrics_and_sandbox_commands_parse() -> None:
    metrics = build_parser().parse_args(command("metrics")[1:])
    assert (metrics.command, metrics.host, metrics.port) == ("metrics", "0.0.0.0", 9808)
    assert command("sandbox")[:2] == ["runq", "sandbox"]
    sandbox = sandbox_parser().parse_args(command("sandbox")[2:])
    assert (sandbox.host, sandbox.port) == ("0.0.0.0", 8765)
    assert command("gateway") == ["runq", "gateway", "--host", "0.0.0.0", "--port", "8000"]


def test_every_reference_is_in_env_example() -> None:
    documented = env_example()
    referenced = {m.group(1) for m in INTERPOLATION.finditer(COMPOSE_TEXT)}
    assert referenced, "the compose file reads its settings from .env"
    assert sorted(referenced - set(documented)) == []
    assert {"OPENAI_API_KEY", "OPENAI_BASE_URL", "RUNQ_FLOWER_BASIC_AUTH"} <= referenced


def test_env_example_holds_no_secret() -> None:
    documented = env_example()
    for name in ("OPENAI_API_KEY", "RUNQ_FLOWER_BASIC_AUTH", "RUNQ_GATEWAY_TOKENS",
                 "RUNQ_METRICS_TOKEN"):  # fmt: skip
        assert documented[name] == "", f"{name} must be left for the operator to fill in"
    assert not re.search(r"sk-[A-Za-z0-9]{8,}", (ROOT / ".env.example").read_text())


def test_runq_variables_are_real_settings() -> None:
    """A typo in a RUNQ_* name would be ignored silently: settings read only known names."""
    fields = {"RUNQ_" + name.upper() for name in Settings.field_names()}
    names = set(env_example())
    for service in RUNQ_SERVICES:
        names |= set(SERVICES[service].get("environment") or {})
    unknown = {n for n in names if n.startswith("RUNQ_")} - fields - NON_SETTINGS_VARS
    assert sorted(unknown) == []


def test_env_example_values_are_valid_settings() -> None:
    env = {k: v for k, v in env_example().items() if v and k.removeprefix("RUNQ_").lower()
           in Settings.field_names()}  # fmt: skip
    settings = load_settings(**{k.removeprefix("RUNQ_").lower(): v for k, v in env.items()})
    assert settings.poll_interval_min <= settings.poll_interval_max


def test_dockerfile_installs_the_package_as_a_non_root_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in text.splitlines()
                    if line and not line.startswith((" ", "#"))]  # fmt: skip
    assert instructions[0] == ["FROM", "python:3.11-slim"]
    # Every extra, pinned by the lock CI passed with (which the build context must hold).
    assert re.search(r"pip install -c requirements/lock\.txt '\.\[all\]'", text)
    assert (ROOT / "requirements" / "lock.txt").is_file()
    users = [rest.strip() for op, *rest_ in instructions if op == "USER" for rest in rest_]
    assert users and users[-1] not in ("root", "0")
    assert re.search(rf"useradd .*\b{re.escape(users[-1])}\b", text)


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", ".git", ".venv", ".runq"} <= ignored
    assert "README.md" not in ignored  # pyproject's readme: `pip install .` needs it
    assert not {"requirements", "examples"} & ignored  # the lock; the example tools


# -- the Flower service's command line, as `runq flower` turns it into Flower's ----------
def _flower_options(argv: list[str]) -> FlowerOptions:
    args = build_parser().parse_args(argv[1:])
    return FlowerOptions(port=args.port, address=args.address, basic_auth=args.basic_auth,
                         demo=args.demo, url_prefix=args.url_prefix)  # fmt: skip


def test_flower_gets_the_credentials_in_its_environment_not_its_argv() -> None:
    options = _flower_options(command("flower"))
    environ = {"RUNQ_FLOWER_BASIC_AUTH": "ops:s3cret-pw", "FLOWER_UNAUTHENTICATED_API": "1"}
    argv, env = flower_command(options, "redis://redis:6379/0", environ)
    assert argv[1:6] == ["-m", "celery", "-A", "runq.worker", "flower"]
    assert "--address=0.0.0.0" in argv and "--port=5555" in argv
    assert any(a.startswith("--tasks_columns=") and "args" in a for a in argv)
    assert not any("s3cret" in a for a in argv)
    assert env["FLOWER_BASIC_AUTH"] == "ops:s3cret-pw"
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert "FLOWER_UNAUTHENTICATED_API" not in env and "RUNQ_FLOWER_BASIC_AUTH" not in env


def test_flower_refuses_to_run_open() -> None:
    with pytest.raises(ConfigurationError, match="RUNQ_FLOWER_BASIC_AUTH=user:password"):
        flower_command(_flower_options(command("flower")), "redis://redis:6379/0", {})


@pytest.mark.parametrize("auth", ["nocolon", "user:", ":pw", "a:b,c:d"])
def test_flower_refuses_malformed_credentials(auth: str) -> None:
    with pytest.raises(ConfigurationError, match="--basic-auth"):
        flower_command(FlowerOptions(basic_auth=auth), "redis://r:6379/0", {})


def test_flower_demo_is_open_on_loopback_only() -> None:
    argv, env = flower_command(FlowerOptions(demo=True), "redis://r:6379/0",
                               {"FLOWER_BASIC_AUTH": "stale:value"})  # fmt: skip
    assert "--address=127.0.0.1" in argv and "FLOWER_BASIC_AUTH" not in env
    with pytest.raises(ConfigurationError, match=r"127\.0\.0\.1 only"):
        flower_command(FlowerOptions(demo=True, address="0.0.0.0"), "redis://r:6379/0", {})


def test_docker_compose_config_validates_the_file() -> None:
    """`docker-compose config` (Debian's compose; no Docker engine needed) accepts the file,
    with the offline profile, and refuses to run Flower without credentials."""
    import shutil
    import subprocess

    binary = shutil.which("docker-compose")
    assert binary, "docker-compose missing: apt-get install -y docker-compose (CI does)"
    env_file = str(ROOT / ".env.example")
    credentials = {"RUNQ_FLOWER_BASIC_AUTH": "ops:secret", "RUNQ_GATEWAY_TOKENS": "t:acme",
                   "RUNQ_METRICS_TOKEN": "scrape"}  # fmt: skip
    base = [binary, "--project-directory", str(ROOT), "--env-file", env_file]
    ok = subprocess.run(
        [*base, "--profile", "offline", "config", "--services"],
        capture_output=True, text=True, env={**credentials, "PATH": os.environ["PATH"]},
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert {"redis", "worker-runs", "worker-tools", "flower", "gateway", "sandbox"} <= set(
        ok.stdout.split()
    )
    refused = subprocess.run([*base, "config", "-q"], capture_output=True, text=True,
                             env={"PATH": os.environ["PATH"]})  # fmt: skip
    assert refused.returncode != 0
    assert "RUNQ_FLOWER_BASIC_AUTH" in refused.stderr
    # Each credential on its own: leaving any one out stops compose, naming it.
    for name in credentials:
        without = {k: v for k, v in credentials.items() if k != name}
        refused = subprocess.run([*base, "config", "-q"], capture_output=True, text=True,
                                 env={**without, "PATH": os.environ["PATH"]})  # fmt: skip
        assert refused.returncode != 0 and name in refused.stderr


def test_produced_files_share_one_volume_across_containers() -> None:
    """RUNQ_FILES_DIR on a scaled deployment: the workers that write a run's files and
    the gateway that serves them mount one volume at the path .env.example names."""
    for name in [*WORKERS, "gateway"]:
        service = SERVICES[name]
        assert "runq-files:/srv/runq-files" in service.get("volumes", []), name
        assert service["environment"]["RUNQ_FILES_DIR"] == "${RUNQ_FILES_DIR:-}", name
    assert "runq-files" in COMPOSE["volumes"]
    assert "RUNQ_FILES_DIR" in env_example()
    assert "/srv/runq-files" in (ROOT / ".env.example").read_text()
    # Empty (the default) keeps the files in Redis; the path is accepted as a setting.
    assert load_settings(files_dir=None).files_dir is None
    assert str(load_settings(files_dir="/srv/runq-files").files_dir) == "/srv/runq-files"
