"""A producer's wait backs off through a Redis outage and gives up with one clear error
(runq.producers.client.reconnect); a full Redis is one line from the CLI."""

from __future__ import annotations

from typing import Any

import pytest
import redis.exceptions

from runq.errors import RedisFullError, RedisUnavailableError
from runq.producers.cli.entry import main
from runq.producers.client import reconnect
from runq.producers.client.sync import Client

URL = "redis://:hunter2@db.internal:6379/0"


def test_an_outage_backs_off_then_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    monkeypatch.setattr(reconnect.time, "sleep", delays.append)
    replies = iter([redis.exceptions.ConnectionError("Connection closed by server"),
                    redis.exceptions.BusyLoadingError("loading"), "ok"])  # fmt: skip

    def read() -> Any:
        reply = next(replies)
        if isinstance(reply, Exception):
            raise reply
        return reply

    assert reconnect.call(reconnect.Outage(URL, 10), read) == "ok"
    assert delays == [reconnect.FIRST_DELAY_S, reconnect.FIRST_DELAY_S * 2]


def test_past_the_timeout_one_error_without_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconnect.time, "sleep", lambda s: None)

    def down() -> Any:
        raise redis.exceptions.ConnectionError("Connection refused")

    with pytest.raises(RedisUnavailableError) as err:
        reconnect.call(reconnect.Outage(URL, 0.0), down)
    assert "hunter2" not in str(err.value) and "db.internal:6379" in str(err.value)
    with pytest.raises(ValueError):  # not an outage: raised at once
        reconnect.call(reconnect.Outage(URL, 10), lambda: int("x"))


def test_oom_is_recognised_also_inside_a_script() -> None:
    assert isinstance(reconnect.full_error(redis.exceptions.OutOfMemoryError("OOM"), URL),
                      RedisFullError)  # fmt: skip
    in_script = redis.exceptions.ResponseError(
        "Error running script: OOM command not allowed when used memory > 'maxmemory'."
    )
    full = reconnect.full_error(in_script, URL)
    assert full is not None and "hunter2" not in str(full)
    assert reconnect.full_error(redis.exceptions.ResponseError("WRONGTYPE"), URL) is None


def test_a_full_redis_is_one_line_from_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def full(self: Client, *args: Any, **kwargs: Any) -> Any:
        raise redis.exceptions.OutOfMemoryError("OOM command not allowed")

    monkeypatch.setenv("REDIS_URL", URL)
    monkeypatch.setattr(Client, "_submit", full)
    assert main(["submit", "hello"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "out of memory" in err and "hunter2" not in err
