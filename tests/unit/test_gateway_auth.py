"""Gateway tokens: parsing `RUNQ_GATEWAY_TOKENS`, lookup, and the refusal to run open."""

from __future__ import annotations

import pytest

from runq.errors import ConfigurationError
from runq.producers.gateway.auth import parse_tokens, tenant_for
from runq.producers.gateway.server import gateway_tokens


def test_parse_tokens() -> None:
    assert parse_tokens("a:alice, b:bob ,") == {"a": "alice", "b": "bob"}
    assert parse_tokens("") == {} and parse_tokens(None) == {}
    for bad in ("nocolon", ":tenant", "token:", "a:x,a:y"):
        with pytest.raises(ConfigurationError, match="RUNQ_GATEWAY_TOKENS"):
            parse_tokens(bad)


def test_tenant_for() -> None:
    tokens = {"a": "alice", "b": "bob"}
    assert tenant_for(tokens, "b") == "bob"
    assert tenant_for(tokens, "c") is None and tenant_for(tokens, None) is None


def test_no_tokens_refuses_unless_demo_on_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNQ_GATEWAY_TOKENS", raising=False)
    with pytest.raises(ConfigurationError, match="RUNQ_GATEWAY_TOKENS"):
        gateway_tokens(demo=False, host="127.0.0.1")
    assert gateway_tokens(demo=True, host="127.0.0.1") == {"demo": "demo"}
    with pytest.raises(ConfigurationError, match=r"127\.0\.0\.1"):
        gateway_tokens(demo=True, host="0.0.0.0")
    monkeypatch.setenv("RUNQ_GATEWAY_TOKENS", "t:x")
    assert gateway_tokens(demo=False, host="0.0.0.0") == {"t": "x"}


@pytest.mark.parametrize("tenant", ["acme:x", "a b", "x" * 65, "ünï"])
def test_a_tenant_name_a_job_would_refuse_is_refused_at_start(tenant: str) -> None:
    with pytest.raises(ConfigurationError, match="RUNQ_GATEWAY_TOKENS: tenant"):
        parse_tokens(f"token-a:{tenant}")
