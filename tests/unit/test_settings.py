from __future__ import annotations

import pytest

from config.celery import celery_config
from config.settings import ConfigError, load_settings


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
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert variable in str(info.value)


def test_poll_bounds_are_checked_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNQ_POLL_INTERVAL_MIN", "9")
    monkeypatch.setenv("RUNQ_POLL_INTERVAL_MAX", "2")
    with pytest.raises(ConfigError, match="RUNQ_POLL_INTERVAL_MIN"):
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
    with pytest.raises(ConfigError, match="RUNQ_CONFIG"):
        load_settings()


def test_api_key_is_never_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123")
    monkeypatch.setenv("RUNQ_JOB_DEADLINE", "-1")
    with pytest.raises(ConfigError) as info:
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
