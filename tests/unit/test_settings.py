from __future__ import annotations

import pytest

from runq.config.celery import celery_config
from runq.config.settings import ConfigurationError, load_settings


def test_defaults_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "RUNQ_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.backend == "responses"
    assert settings.redis_url is None
    assert not settings.backend_configured


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RUNQ_BACKEND", "telepathy"),
        ("RUNQ_JOB_DEADLINE", "-5"),
        ("RUNQ_POLL_INTERVAL_MIN", "zero"),
        ("REDIS_URL", "http://not-redis"),
        ("OPENAI_BASE_URL", "ftp://x"),
    ],
)
def test_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert variable in str(info.value)


def test_poll_bounds_are_checked_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNQ_POLL_INTERVAL_MIN", "9")
    monkeypatch.setenv("RUNQ_POLL_INTERVAL_MAX", "2")
    with pytest.raises(ConfigurationError, match="RUNQ_POLL_INTERVAL_MIN"):
        load_settings()


def test_toml_file_is_read_and_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    path = tmp_path / "runq.toml"
    path.write_text('[runq]\nmodel = "from-toml"\nmode = "stream"\n')
    monkeypatch.setenv("RUNQ_CONFIG", str(path))
    monkeypatch.setenv("RUNQ_MODE", "poll")
    settings = load_settings()
    assert settings.model == "from-toml"
    assert settings.mode == "poll"


def test_missing_toml_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("RUNQ_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigurationError, match="RUNQ_CONFIG"):
        load_settings()


def test_api_key_is_never_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123")
    monkeypatch.setenv("RUNQ_JOB_DEADLINE", "-1")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert "sk-secret-value-123" not in str(info.value)


def test_celery_config_is_json_only_and_safe() -> None:
    conf = celery_config(load_settings(visibility_timeout=7200), "redis://127.0.0.1:1/0")
    assert conf["accept_content"] == ["json"]
    assert conf["task_serializer"] == conf["result_serializer"] == "json"
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_send_task_events"] and conf["task_send_sent_event"]
    assert conf["broker_transport_options"]["visibility_timeout"] == 7200
    assert conf["task_routes"]["runq.tools.*"] == {"queue": "tools"}
    assert conf["task_routes"]["runq.*"] == {"queue": "runs"}


def test_task_events_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNQ_TASK_EVENTS", "false")
    conf = celery_config(load_settings(), "redis://127.0.0.1:1/0")
    assert conf["worker_send_task_events"] is False and conf["task_send_sent_event"] is False


def test_a_separate_broker_leaves_results_on_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNQ_BROKER_URL", "amqp://guest:guest@rabbit:5672//")
    conf = celery_config(load_settings(), "redis://127.0.0.1:6379/0")
    assert conf["broker_url"].startswith("amqp://")
    assert conf["result_backend"] == "redis://127.0.0.1:6379/0"


def test_dotenv_file_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    (tmp_path / ".env").write_text("RUNQ_MODEL=from-dotenv\nRUNQ_MODE=stream\nREDIS_URL=\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("RUNQ_MODE", "poll")
    settings = load_settings()
    assert settings.model == "from-dotenv"
    assert settings.mode == "poll"
    assert settings.redis_url is None  # an empty value means unset


@pytest.mark.parametrize(("raw", "expected"), [("false", False), ("0", False), ("Yes", True)])
def test_flags_read_the_usual_spellings(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool
) -> None:
    monkeypatch.setenv("RUNQ_TASK_EVENTS", raw)
    assert load_settings().task_events is expected


def test_values_are_typed_from_their_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNQ_TOOL_MODULES", "examples.tools, myapp.tools")
    monkeypatch.setenv("RUNQ_CHAINS", '{"cheap": {"links": ["a", "b"]}}')
    monkeypatch.setenv("RUNQ_MAX_TOOL_ROUNDS", "3")
    monkeypatch.setenv("RUNQ_RPM", "600")
    monkeypatch.setenv("RUNQ_HOME", "/srv/runq")
    settings = load_settings()
    assert settings.tool_modules == ["examples.tools", "myapp.tools"]
    assert settings.chains == {"cheap": {"links": ["a", "b"]}}
    assert settings.max_tool_rounds == 3 and settings.rpm == 600.0
    assert str(settings.home) == "/srv/runq"


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("RUNQ_TASK_EVENTS", "maybe", "true or false"),
        ("RUNQ_MAX_TOOL_ROUNDS", "2.5", "whole number"),
        ("RUNQ_MAX_TOOL_ROUNDS", "0", "at least 1"),
        ("RUNQ_CHAINS", "[1, 2]", "table"),
        ("RUNQ_CHAINS", "{not json", "JSON object"),
        ("RUNQ_LOG_FORMAT", "xml", "one of"),
    ],
)
def test_each_kind_of_bad_value_says_what_it_must_be(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, complaint: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert variable in str(info.value) and complaint in str(info.value)


def test_every_bad_value_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNQ_BACKEND", "telepathy")
    monkeypatch.setenv("RUNQ_JOB_DEADLINE", "-5")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert "RUNQ_BACKEND" in str(info.value) and "RUNQ_JOB_DEADLINE" in str(info.value)


def test_unknown_toml_keys_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    path = tmp_path / "runq.toml"
    path.write_text('[runq]\nmodle = "typo"\n')
    monkeypatch.setenv("RUNQ_CONFIG", str(path))
    with pytest.raises(ConfigurationError, match="modle"):
        load_settings()


def test_toml_chains_tables_become_the_chains_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    path = tmp_path / "runq.toml"
    path.write_text(
        '[runq]\nchain = "cheap"\n\n[chains.cheap]\nlinks = [\n'
        '  { backend = "responses", model = "gpt-5-mini", rpm = 500 },\n'
        '  { backend = "chat", model = "llama-3.3" },\n]\n'
    )
    monkeypatch.setenv("RUNQ_CONFIG", str(path))
    settings = load_settings()
    assert settings.chain == "cheap"
    assert settings.chains["cheap"]["links"][1] == {"backend": "chat", "model": "llama-3.3"}


def test_an_unknown_override_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="modle"):
        load_settings(modle="x")


def test_the_api_key_never_shows_in_a_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123")
    settings = load_settings()
    assert "sk-secret-value-123" not in repr(settings)
    assert settings.api_key_value() == "sk-secret-value-123"


def test_runq_config_in_dotenv_names_the_toml_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """A worker started by `runq up` in the folder reads the chains the CLI reads."""
    (tmp_path / "runq.toml").write_text(
        '[chains.cheap]\nlinks = [{ backend = "chat", model = "llama-3.3" }]\n'
    )
    (tmp_path / ".env").write_text("RUNQ_CONFIG=runq.toml\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RUNQ_CONFIG", raising=False)
    assert load_settings().chains["cheap"]["links"] == [{"backend": "chat", "model": "llama-3.3"}]


def test_runq_config_in_the_environment_wins_over_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    (tmp_path / "a.toml").write_text('[runq]\nmodel = "from-a"\n')
    (tmp_path / "b.toml").write_text('[runq]\nmodel = "from-b"\n')
    (tmp_path / ".env").write_text("RUNQ_CONFIG=a.toml\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNQ_CONFIG", str(tmp_path / "b.toml"))
    assert load_settings().model == "from-b"
