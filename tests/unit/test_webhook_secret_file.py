"""The receiver's secret from a file: written 0600 in one step, read with
`OPENAI_WEBHOOK_SECRET_FILE`, read again after a rotation (and no more often than that
under forged deliveries); and the events `runq webhooks register --events` accepts."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from runq.config.settings import load_settings
from runq.errors import ConfigurationError
from runq.producers.cli.webhook_endpoints import _event_types
from runq.producers.webhooks.endpoints import RUNQ_EVENT_TYPES, read_secret, write_secret
from runq.producers.webhooks.receiver import secret_reloader, webhook_secret
from runq.runs.webhooks import WebhookRejected, WebhookVerifier
from tests.unit.test_webhooks import SECRET, completed, signed

NEW_SECRET = "whsec_" + base64.b64encode(b"the rotated signing secret, 32 b").decode()


def test_a_secret_file_is_its_owners_alone_and_replaced_whole(tmp_path) -> None:
    path = tmp_path / "hooks" / "signing_secret"
    write_secret(path, SECRET)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_secret(path) == SECRET
    write_secret(path, NEW_SECRET)
    assert read_secret(path) == NEW_SECRET
    assert os.listdir(path.parent) == ["signing_secret"]  # no temporary file left behind


def test_the_receiver_reads_its_secret_from_the_file_the_variable_names(
    tmp_path, monkeypatch
) -> None:
    path = tmp_path / "signing_secret"
    write_secret(path, SECRET)
    monkeypatch.delenv("OPENAI_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET_FILE", str(path))
    settings = load_settings()
    assert webhook_secret(settings) == SECRET
    reload = secret_reloader(settings)
    assert reload is not None
    write_secret(path, NEW_SECRET)
    assert reload() == NEW_SECRET
    # The variable wins over the file, and a value cannot change: nothing to read again.
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", SECRET)
    assert secret_reloader(load_settings()) is None


def test_a_missing_or_empty_secret_file_is_named(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigurationError, match=r"cannot read the webhook secret file .*absent"):
        webhook_secret(load_settings())
    (tmp_path / "empty").write_text("\n")
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET_FILE", str(tmp_path / "empty"))
    with pytest.raises(ConfigurationError, match="empty"):
        webhook_secret(load_settings())
    monkeypatch.delenv("OPENAI_WEBHOOK_SECRET_FILE")
    with pytest.raises(ConfigurationError, match="OPENAI_WEBHOOK_SECRET_FILE"):
        webhook_secret(load_settings())


class FileSecret:
    """The secret file as the verifier's `reload` sees it, counting reads."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.reads = 0

    def __call__(self) -> str:
        self.reads += 1
        return self.secret


def test_a_rotated_secret_is_read_again_on_the_first_delivery_it_signs() -> None:
    source = FileSecret(SECRET)
    verifier = WebhookVerifier(SECRET, reload=source)
    body, headers = signed(completed("resp_1"))
    assert verifier.verify(body, headers).object_id == "resp_1"
    assert source.reads == 0  # a delivery that verifies reads nothing
    source.secret = NEW_SECRET  # `runq webhooks rotate` wrote the file
    body, headers = signed(completed("resp_2"), secret=NEW_SECRET, webhook_id="wh_2")
    assert verifier.verify(body, headers).object_id == "resp_2"
    assert source.reads == 1
    # The old secret no longer verifies once the new one is in use.
    body, headers = signed(completed("resp_3"), webhook_id="wh_3")
    with pytest.raises(WebhookRejected) as refused:
        verifier.verify(body, headers)
    assert refused.value.status == 401


def test_forged_deliveries_do_not_make_the_receiver_read_its_file_each_time() -> None:
    source = FileSecret(SECRET)
    verifier = WebhookVerifier(SECRET, reload=source)
    forged = "whsec_" + base64.b64encode(b"somebody else's secret, 32 bytes").decode()
    for n in range(20):
        body, headers = signed(completed("resp_x"), secret=forged, webhook_id=f"wh_{n}")
        with pytest.raises(WebhookRejected):
            verifier.verify(body, headers)
    assert source.reads == 1  # once per WebhookVerifier.RELOAD_SECONDS at most


def test_deliveries_failing_together_after_a_rotation_all_take_the_new_secret() -> None:
    """Two deliveries checked with the old secret at the same moment: the first to ask
    reads the file, the second finds the secret changed since its check (no second read,
    though the 5-second limit is on) and checks again instead of refusing."""
    source = FileSecret(NEW_SECRET)
    verifier = WebhookVerifier(SECRET, reload=source)
    assert verifier._secret_changed(SECRET) is True
    assert verifier._secret_changed(SECRET) is True
    assert source.reads == 1
    assert verifier._secret_changed(NEW_SECRET) is False  # checked with the new one: no


def test_an_unreadable_file_keeps_the_secret_in_use() -> None:
    def broken() -> str:
        raise ConfigurationError("the webhook secret file is empty")

    verifier = WebhookVerifier(SECRET, reload=broken)
    body, headers = signed(completed("resp_1"), secret=NEW_SECRET)
    with pytest.raises(WebhookRejected):
        verifier.verify(body, headers)
    body, headers = signed(completed("resp_2"), webhook_id="wh_2")
    assert verifier.verify(body, headers).object_id == "resp_2"


def test_register_takes_families_or_exact_event_types() -> None:
    assert _event_types("response,batch") == RUNQ_EVENT_TYPES
    assert _event_types("response.completed, batch") == (
        "response.completed", "batch.completed", "batch.failed", "batch.expired",
        "batch.cancelled",
    )  # fmt: skip
    with pytest.raises(ConfigurationError, match="'eval' is none of runq's events"):
        _event_types("eval")
    with pytest.raises(ConfigurationError, match="at least one"):
        _event_types(" , ")
