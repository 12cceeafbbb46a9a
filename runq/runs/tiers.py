"""Cost tiers: what a job pays for how fast it wants its answer.

OpenAI sells one model at several speeds and prices. A job (or a chain's model link)
names its tier; runq maps it onto the request, or onto the Batch API:

| tier       | how it is sent                                | price (of standard) |
|------------|-----------------------------------------------|---------------------|
| `standard` | a live request, `service_tier: "default"`     | 1                   |
| `flex`     | a live request, `service_tier: "flex"`        | 0.5                 |
| `priority` | a live request, `service_tier: "priority"`    | as configured (2)   |
| `batch`    | a line of a Batch API file (`runs.batcher`)   | 0.5                 |
| `auto`     | one of the above, chosen by the job's deadline (`TierPolicy.choose`) |

Assistants runs carry no `service_tier` and have no batch endpoint: on that backend
only `standard` (and `auto`, which then picks it) is accepted; anything else is refused
with a message saying so, as `runs.model_settings` refuses a setting a backend lacks.

A job that names a tier does not also name a different `service_tier`: one of the two
would be silently ignored, so the pair is refused.

The chosen tier and why are in the record (`Job.tier`) and the result, and so is what
the job cost, by tier (`Job.cost`, priced with the price table of `runs.metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runq.errors import InvalidJobError

AUTO, STANDARD, FLEX, PRIORITY, BATCH = "auto", "standard", "flex", "priority", "batch"
TIERS = (AUTO, STANDARD, FLEX, PRIORITY, BATCH)
SERVICE_TIER = {STANDARD: "default", FLEX: "flex", PRIORITY: "priority"}
BATCH_ENDPOINTS = {"responses": "/v1/responses", "chat": "/v1/chat/completions"}
FLEX_REFUSED = "resource_unavailable"  # the code of flex's 429 when capacity is short
FLEX_ON_UNAVAILABLE = ("standard", "retry")

# Defaults of the policy; each is a setting (`RUNQ_TIER_EXPECTED_SECONDS`, ...).
DEFAULT_EXPECTED = {PRIORITY: 20.0, STANDARD: 60.0, FLEX: 300.0, BATCH: 3600.0}
DEFAULT_PRICE_FACTORS = {STANDARD: 1.0, FLEX: 0.5, BATCH: 0.5, PRIORITY: 2.0}
# Cheapest first; among equal prices, the order here (batch saves requests too).
CHEAPEST_FIRST = (BATCH, FLEX, STANDARD, PRIORITY)


def why_not(tier: str, backend: str, mode: str = "poll", has_files: bool = False) -> str | None:
    """Why `backend` (in `mode`) cannot run a job on `tier`, or None when it can."""
    if tier in (AUTO, STANDARD):
        return None
    if backend == "assistants":
        return "Assistants runs have no service tier and no batch endpoint"
    if tier == BATCH:
        if mode == "stream":
            return "a batch line is answered whole, so it cannot stream"
        if has_files:
            return "a batch line cannot upload the job's input files"
    return None


def check(
    tier: Any,
    *,
    backend: str,
    mode: str = "poll",
    service_tier: str | None = None,
    has_files: bool = False,
    name: str = "tier",
) -> None:
    """Raise `InvalidJobError` naming `tier` when it is not a tier this job can use."""
    if tier is None:
        return
    if tier not in TIERS:
        raise InvalidJobError(name, f"must be one of {', '.join(TIERS)}, got {tier!r}")
    why = why_not(tier, backend, mode, has_files)
    if why is not None:
        raise InvalidJobError(name, f"the {backend} backend cannot run tier {tier!r}: {why}")
    if service_tier not in (None, "auto") and SERVICE_TIER.get(tier) != service_tier:
        raise InvalidJobError(
            name, f"tier {tier!r} and service_tier {service_tier!r} disagree: set only the tier"
        )


@dataclass(frozen=True)
class TierChoice:
    tier: str
    reason: str


@dataclass(frozen=True)
class TierPolicy:
    """How `auto` chooses, what a flex refusal does, and what each tier costs.

    `auto`'s rule: with `remaining` seconds before the job's deadline, take the cheapest
    tier the job's backend can run (`CHEAPEST_FIRST`: batch, flex, standard, priority;
    priority only if `auto_priority`) whose expected completion time, times the safety
    factor, fits: `expected[tier] * safety_factor <= remaining`. When none fits, take
    standard (priority with `auto_priority`): the job gets its best chance at the
    price it always had. A job with no deadline of its own (None) gets standard.
    """

    expected: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_EXPECTED))
    safety_factor: float = 2.0
    auto_priority: bool = False
    flex_on_unavailable: str = "standard"  # or "retry": stay on flex, with backoff
    price_factors: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PRICE_FACTORS))
    # USD per 1M tokens (input, output) by model: the table of `runs.metrics`.
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def needs(self, tier: str) -> float:
        """Seconds a job must have left for `auto` to pick `tier`."""
        return self.expected.get(tier, math.inf) * self.safety_factor

    def choose(
        self, remaining: float | None, *, backend: str, mode: str = "poll", has_files: bool = False
    ) -> TierChoice:
        """`auto`'s choice and why (the rule is in the class docstring)."""
        if remaining is None:
            return TierChoice(STANDARD, "auto: the job has no deadline, so standard")
        candidates = [t for t in CHEAPEST_FIRST if self.auto_priority or t != PRIORITY]
        skipped: list[str] = []
        for tier in candidates:
            if why_not(tier, backend, mode, has_files) is not None:
                continue
            if self.needs(tier) <= remaining:
                why = (
                    f"auto: {tier} is the cheapest tier expected to finish in time "
                    f"({self.expected[tier]:g}s x {self.safety_factor:g} <= {remaining:.0f}s left)"
                )
                if skipped:
                    why += f"; the deadline is too short for {', '.join(skipped)}"
                return TierChoice(tier, why)
            skipped.append(tier)
        fallback = PRIORITY if self.auto_priority else STANDARD
        return TierChoice(
            fallback,
            f"auto: the deadline ({remaining:.0f}s left) is too short for "
            f"{', '.join(skipped) or 'every tier'} with the safety margin; using {fallback}",
        )

    def price_factor(self, tier: str) -> float:
        return float(self.price_factors.get(tier, 1.0))


def policy_from_settings(settings: Any) -> TierPolicy:
    """The policy the worker's settings describe (expected times and prices merged over
    the defaults); `ConfigurationError` naming the setting that is wrong."""
    from runq.errors import ConfigurationError
    from runq.runs.metrics import load_prices

    try:
        check_policy_table("RUNQ_TIER_EXPECTED_SECONDS", settings.tier_expected_seconds)
        check_policy_table("RUNQ_TIER_PRICE_FACTORS", settings.tier_price_factors)
    except ValueError as err:
        raise ConfigurationError(f"invalid configuration: {err}") from None
    expected = {k: float(v) for k, v in settings.tier_expected_seconds.items()}
    factors = {k: float(v) for k, v in settings.tier_price_factors.items()}
    return TierPolicy(
        expected={**DEFAULT_EXPECTED, **expected},
        safety_factor=float(settings.tier_safety_factor),
        auto_priority=bool(settings.tier_auto_priority),
        flex_on_unavailable=str(settings.flex_on_unavailable),
        price_factors={**DEFAULT_PRICE_FACTORS, **factors},
        prices=load_prices(),
    )


def check_policy_table(name: str, table: Mapping[str, Any]) -> None:
    """A table of the policy names known tiers and positive numbers (`ValueError` if not)."""
    for tier, value in table.items():
        if tier not in TIERS or tier == AUTO:
            raise ValueError(f"{name}: unknown tier {tier!r} (standard, flex, priority, batch)")
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
        if not ok or not math.isfinite(value):
            raise ValueError(f"{name}: {tier} must be a positive number, got {value!r}")


# -- the record ------------------------------------------------------------------------
def requested(job: Any, link: Any) -> str | None:
    """The tier asked for: the link's (operator's choice) over the job's; None: none."""
    return getattr(link, "tier", None) or job.spec.tier


def record_choice(job: Any, asked: str, choice: TierChoice) -> None:
    """Write the choice into the record and the request: `job.tier`, and the service
    tier a live request carries (none for a batch line)."""
    before = (job.tier or {}).get("chosen")
    entry = dict(job.tier or {})
    entry.update(requested=asked, chosen=choice.tier, reason=choice.reason)
    if before is not None and before != choice.tier:
        entry.setdefault("moves", []).append({"from": before, "to": choice.tier,
                                              "reason": choice.reason})  # fmt: skip
    job.tier = entry
    job.spec.service_tier = SERVICE_TIER.get(choice.tier)


def pinned(job: Any) -> str | None:
    """A tier the job was moved to for good (flex refused, batch deadline near)."""
    return (job.tier or {}).get("pinned")


def pin(job: Any, tier: str, reason: str) -> None:
    """Move the job to `tier` for the rest of its life (recorded in `tier.moves`)."""
    record_choice(job, (job.tier or {}).get("requested", tier), TierChoice(tier, reason))
    assert job.tier is not None
    job.tier["pinned"] = tier


def current(job: Any) -> str:
    """The tier the job's requests go on now (standard for a job that named none)."""
    return (job.tier or {}).get("chosen") or STANDARD


def resolve(job: Any, link: Any, policy: TierPolicy, remaining: float | None) -> str | None:
    """The tier of the request the job is about to make on `link`, written into the
    record (`record_choice`); None for a job (and link) that names no tier: its requests
    stay as its own `service_tier` says, as before tiers existed."""
    asked = requested(job, link)
    fixed = pinned(job)
    if fixed is not None:
        record_choice(job, asked or fixed, TierChoice(fixed, job.tier["reason"]))
        return fixed
    if asked is None:
        return None
    spec = job.spec
    if asked == AUTO:
        choice = policy.choose(
            remaining, backend=spec.backend, mode=spec.mode, has_files=bool(spec.files)
        )
    else:
        why = why_not(asked, spec.backend, spec.mode, bool(spec.files))
        who = "the link" if getattr(link, "tier", None) else "the job"
        if why is None:
            choice = TierChoice(asked, f"{asked}: asked for by {who}")
        else:  # a fallback link on another protocol: standard, and say why
            choice = TierChoice(STANDARD, f"{asked} asked for by {who}, but {why}: standard")
    record_choice(job, asked, choice)
    return choice.tier


def flex_refused(err: BaseException) -> bool:
    """Is this flex's 429 `resource_unavailable` (no flex capacity right now)?

    The classified error keeps the HTTP status, not the server's code; the openai
    error it was made from (its cause) has the code."""
    code = getattr(err.__cause__, "code", None)
    return code == FLEX_REFUSED or FLEX_REFUSED in str(err)


# -- costs -----------------------------------------------------------------------------
def add_usage(job: Any, usage: Mapping[str, int], tier: str | None = None) -> None:
    """Count `usage` against the tier it was spent on (`Job.tier_usage`)."""
    if not usage:
        return
    spent = job.tier_usage.setdefault(tier or current(job), {})
    for key in ("input_tokens", "output_tokens"):
        spent[key] = spent.get(key, 0) + int(usage.get(key, 0) or 0)


def price_job(job: Any, usage: Mapping[str, int], policy: TierPolicy) -> None:
    """Count a call's usage on the job's current tier, and price the job again."""
    from runq.runs.metrics import price_for  # the worker's side only

    add_usage(job, usage)
    if job.tier_usage:
        price = price_for(job.spec.model, policy.prices)
        job.cost = cost(job.spec.model, job.tier_usage, price, policy)


def cost(
    model: str,
    tier_usage: Mapping[str, Mapping[str, int]],
    price: tuple[float, float] | None,
    policy: TierPolicy,
) -> dict[str, Any]:
    """What the job cost (USD), by tier, and what it would have cost on standard.

    `price` is the model's (input, output) USD per 1M tokens from the price table;
    None: the model is not in it, so no amounts (only tokens)."""
    by_tier: dict[str, dict[str, Any]] = {}
    total = standard = 0.0
    for tier, spent in tier_usage.items():
        inputs, outputs = int(spent.get("input_tokens", 0)), int(spent.get("output_tokens", 0))
        row: dict[str, Any] = {"input_tokens": inputs, "output_tokens": outputs}
        if price is not None:
            at_standard = (inputs * price[0] + outputs * price[1]) / 1_000_000
            row["usd"] = round(at_standard * policy.price_factor(tier), 8)
            total += row["usd"]
            standard += at_standard * policy.price_factor(STANDARD)
        by_tier[tier] = row
    if price is None:
        return {"model": model, "usd": None, "standard_usd": None, "by_tier": by_tier}
    return {
        "model": model,
        "usd": round(total, 8),
        "standard_usd": round(standard, 8),
        "by_tier": by_tier,
    }
