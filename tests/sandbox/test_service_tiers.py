"""Service tiers on live requests, through the real ``openai`` client.

``service_tier`` is echoed (``auto`` answers ``default``), ``flex`` is slower and is
sometimes refused with 429 ``resource_unavailable`` (seeded dice), ``priority`` is faster.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from batch_helpers import client_of, serve
from sandbox_helpers import admin

from runq.sandbox.server.serve import SandboxServer

LATENCY_MS = 400


@pytest.fixture(scope="module")
def tiers() -> Iterator[SandboxServer]:
    """Flex takes 3x, priority 0.5x; flex refused half the time, by seeded dice."""
    with serve(latency_ms=LATENCY_MS, flex_unavailable_rate=0.5, seed=7) as srv:
        yield srv


@pytest.fixture
def client(tiers: SandboxServer) -> openai.OpenAI:
    admin(tiers.url, "/sandbox/reset", "POST")
    return client_of(tiers)


CHAT = [{"role": "user", "content": "What is 2+2?"}]


@pytest.mark.parametrize(
    ("asked", "shown"),
    [(None, "default"), ("auto", "default"), ("default", "default"), ("priority", "priority")],
)
def test_the_tier_is_echoed_as_openai_does(
    client: openai.OpenAI, asked: str | None, shown: str
) -> None:
    extra = {} if asked is None else {"service_tier": asked}
    response = client.responses.create(model="gpt-4o-mini", input="Hi", background=True, **extra)
    assert response.service_tier == shown
    assert client.responses.retrieve(response.id).service_tier == shown
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=CHAT, **extra)  # type: ignore[arg-type]
    assert completion.service_tier == shown


def _planned_ms(client: openai.OpenAI, tier: str) -> int:
    """How long the sandbox plans a background response on ``tier`` to take."""
    raw = client.responses.with_raw_response.create(
        model="gpt-4o-mini",
        input="Hi",
        background=True,
        service_tier=tier,  # type: ignore[arg-type]
        extra_headers={"x-sandbox-fault": "none"},  # no flex refusal: time it
    )
    return int(raw.headers["openai-poll-after-ms"])


def test_flex_is_slower_and_priority_faster(client: openai.OpenAI) -> None:
    default = _planned_ms(client, "default")
    flex = _planned_ms(client, "flex")
    priority = _planned_ms(client, "priority")
    assert LATENCY_MS * 0.8 < default <= LATENCY_MS
    assert flex > 2.5 * default
    assert priority < 0.6 * default


def test_a_synchronous_flex_answer_takes_its_longer_time(client: openai.OpenAI) -> None:
    """The wait is real: a flex chat completion is not answered before its time."""
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=CHAT, service_tier="flex",  # type: ignore[arg-type]
        extra_headers={"x-sandbox-fault": "none"},
    )  # fmt: skip
    assert raw.elapsed.total_seconds() >= 3 * LATENCY_MS / 1000 * 0.9
    assert raw.parse().service_tier == "flex"


def _flex_outcomes(client: openai.OpenAI, count: int) -> list[str]:
    outcomes = []
    for _ in range(count):
        try:
            client.responses.create(
                model="gpt-4o-mini", input="Hi", background=True, service_tier="flex"
            )
            outcomes.append("served")
        except openai.RateLimitError as exc:
            assert exc.code == "resource_unavailable"
            assert exc.status_code == 429
            assert exc.response.headers["retry-after"] == "1"
            outcomes.append("refused")
    return outcomes


def test_flex_is_refused_with_resource_unavailable_by_seeded_dice(
    tiers: SandboxServer, client: openai.OpenAI
) -> None:
    first = _flex_outcomes(client, 20)
    assert 0 < first.count("refused") < 20
    stats = admin(tiers.url, "/sandbox/stats")["requests_by_service_tier"]
    assert stats == {"flex": first.count("served"), "flex_refused": first.count("refused")}
    admin(tiers.url, "/sandbox/reset", "POST")
    assert _flex_outcomes(client, 20) == first  # same seed, same refusals


def test_only_flex_is_ever_refused(tiers: SandboxServer, client: openai.OpenAI) -> None:
    for tier in ("default", "priority", "auto"):
        for _ in range(5):
            client.responses.create(
                model="gpt-4o-mini",
                input="Hi",
                background=True,
                service_tier=tier,  # type: ignore[arg-type]
            )
    stats = admin(tiers.url, "/sandbox/stats")["requests_by_service_tier"]
    assert stats == {"default": 10, "priority": 5}


def test_a_refusal_can_be_forced_on_chat_too(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=CHAT, service_tier="flex",  # type: ignore[arg-type]
            extra_headers={"x-sandbox-fault": "resource_unavailable"},
        )  # fmt: skip
    assert refused.value.code == "resource_unavailable"
    assert "service_tier" in str(refused.value)


def test_an_unknown_tier_is_refused_naming_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=CHAT,
            service_tier="gold",  # type: ignore[arg-type]
        )
    assert refused.value.param == "service_tier"
    with pytest.raises(openai.BadRequestError, match="'gold'"):
        client.responses.create(model="gpt-4o-mini", input="Hi", service_tier="gold")  # type: ignore[arg-type]
