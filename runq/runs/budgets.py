"""Budgets: what a tenant (or a batch of jobs) may spend per day or per month.

`RUNQ_BUDGETS` names the budgets, in USD, in tokens, or both:

    {"acme": {"usd": 10, "period": "day", "over": "wait"},
     "batch:nightly": {"tokens": 2000000, "period": "month", "over": "fail"}}

A plain name is a tenant (`default` is the jobs that name none); `batch:<label>` is
every job whose metadata says `"batch": "<label>"`. A job falls under its tenant's
budget and its batch's, if any.

They are enforced at admission (`runs.fairness`), before a job is sent to a worker: the
job reserves its **estimate** in each budget it falls under, in the same Lua call that
admits it (`budget_check.lua`), so two workers admitting at once cannot both take the
last of a budget. When the job ends its reservation is **settled** from the usage the
backend reported (once, in the call that gives back its place: `fair_release.lua`).
Reservations never exceed a budget; only a job that uses more than its estimate can go
over, by at most that job's excess.

The estimate (`estimate`) is deliberately cheap and on the high side: the input's
characters divided by four (a token is about four characters of English) plus the
job's `max_output_tokens`, or `RUNQ_BUDGET_OUTPUT_TOKENS` when it sets none, priced with
the price table of `runs.metrics` (`RUNQ_PRICES`). A model the table does not know
costs nothing in USD; its tokens still count against a token budget.

Over budget, `over: "wait"` holds the job (and its tenant's later jobs, which queue
behind it) until the budget has room again: the next period, or sooner when running
jobs settle below their estimate. `over: "fail"` ends it `budget_exceeded`; a job whose
estimate alone is more than the whole budget fails whatever `over` says.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runq.errors import ConfigurationError
from runq.runs import keys, lua
from runq.runs.job import Job, JobSpec
from runq.runs.metrics import load_prices, price_for

BUDGETS_ENV = "RUNQ_BUDGETS"
DEFAULT_TENANT = "default"  # the tenant of jobs that name none
BATCH_LABEL = "batch"  # the metadata key that puts a job in a batch's budget
PERIODS = ("day", "month")
OVERS = ("wait", "fail")
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Budget:
    """One budget: its scope (`acme`, `batch:nightly`), limits, period, what over does."""

    scope: str
    usd: float | None
    tokens: int | None
    period: str
    over: str

    def period_bounds(self, now: float) -> tuple[str, float]:
        """The current period's name (`2026-11-29`, `2026-11`) and when it ends (UTC)."""
        at = datetime.fromtimestamp(now, UTC)
        if self.period == "day":
            start = at.replace(hour=0, minute=0, second=0, microsecond=0)
            end = start.timestamp() + 86400
            return start.strftime("%Y-%m-%d"), end
        first = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        following = first.replace(year=first.year + (first.month == 12),
                                  month=first.month % 12 + 1)  # fmt: skip
        return first.strftime("%Y-%m"), following.timestamp()

    def key(self, now: float) -> str:
        return keys.budget(self.scope, self.period_bounds(now)[0])


def parse_budgets(raw: Mapping[str, Any]) -> dict[str, Budget]:
    """`RUNQ_BUDGETS` as budgets by scope; a `ConfigurationError` names what is wrong."""
    from runq.runs.job import TENANT

    found: dict[str, Budget] = {}
    for scope, spec in raw.items():
        where = f"{BUDGETS_ENV}[{scope!r}]"
        name = scope.removeprefix(f"{BATCH_LABEL}:")
        if not TENANT.fullmatch(name):
            raise ConfigurationError(
                f"{where}: a budget names a tenant or `batch:<label>` (1-64 of A-Z a-z 0-9 . _ -)"
            )
        if not isinstance(spec, dict):
            raise ConfigurationError(f'{where} must be an object like {{"usd": 10}}')
        unknown = set(spec) - {"usd", "tokens", "period", "over"}
        if unknown:
            raise ConfigurationError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        usd, tokens = spec.get("usd"), spec.get("tokens")
        if usd is None and tokens is None:
            raise ConfigurationError(f"{where} needs a limit: `usd`, `tokens` or both")
        for label, value in (("usd", usd), ("tokens", tokens)):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if value is not None and not (number and math.isfinite(value) and value >= 0):
                raise ConfigurationError(f"{where}.{label} must be a number >= 0, got {value!r}")
        period, over = spec.get("period", "day"), spec.get("over", "wait")
        if period not in PERIODS:
            raise ConfigurationError(f"{where}.period must be 'day' or 'month', got {period!r}")
        if over not in OVERS:
            raise ConfigurationError(f"{where}.over must be 'wait' or 'fail', got {over!r}")
        found[scope] = Budget(
            scope,
            None if usd is None else float(usd),
            None if tokens is None else int(tokens),
            period,
            over,
        )
    return found


def scopes_of(spec: JobSpec) -> list[str]:
    """The budgets a job may fall under: its tenant's, then its batch's."""
    scopes = [spec.tenant or DEFAULT_TENANT]
    label = (spec.metadata or {}).get(BATCH_LABEL)
    if label:
        scopes.append(f"{BATCH_LABEL}:{label}")
    return scopes


def input_chars(spec: JobSpec) -> int:
    """The characters of a job's input and instructions (its messages' text, as JSON)."""
    text = spec.input if isinstance(spec.input, str) else json.dumps(spec.input)
    return len(text) + len(spec.instructions or "")


def estimate(
    spec: JobSpec, output_tokens: int, prices: Mapping[str, tuple[float, float]]
) -> tuple[float, int]:
    """A job's estimated cost before it runs: (USD, tokens). See the module docstring."""
    tokens_in = -(-input_chars(spec) // CHARS_PER_TOKEN)
    tokens_out = spec.max_output_tokens or output_tokens
    return cost_of(spec.model, tokens_in, tokens_out, prices), tokens_in + tokens_out


def cost_of(
    model: str, tokens_in: int, tokens_out: int, prices: Mapping[str, tuple[float, float]]
) -> float:
    price = price_for(model, prices)
    if price is None:
        return 0.0
    return (tokens_in * price[0] + tokens_out * price[1]) / 1_000_000


class BudgetBook:
    """The budgets as the workers, the producers and `runq budgets` use them."""

    def __init__(
        self,
        redis: Any,
        budgets: Mapping[str, Any] | None = None,
        *,
        output_tokens: int = 1024,
        prices: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        self.redis = redis
        self.budgets = parse_budgets(budgets or {})
        self.output_tokens = output_tokens
        self.prices = dict(load_prices() if prices is None else prices)
        settle = lua.source("budget_check") + lua.source("budget_settle")
        self._settle = redis.register_script(settle)

    def estimate(self, spec: JobSpec) -> tuple[float, int]:
        return estimate(spec, self.output_tokens, self.prices)

    def lua_arg(self, now: float) -> str:
        """The budgets of the current periods, as `budget_check.lua` reads them."""
        table: dict[str, dict[str, Any]] = {}
        for scope, budget in self.budgets.items():
            _, until = budget.period_bounds(now)
            entry: dict[str, Any] = {"key": budget.key(now), "over": budget.over, "until": until}
            if budget.usd is not None:
                entry["usd"] = budget.usd
            if budget.tokens is not None:
                entry["tokens"] = budget.tokens
            table[scope] = entry
        return json.dumps(table) if table else "{}"

    def spent(self, job: Job) -> tuple[float, int]:
        """What an ended job cost, from the usage its backend reported: (USD, tokens)."""
        tokens_in = int(job.usage.get("input_tokens", 0) or 0)
        tokens_out = int(job.usage.get("output_tokens", 0) or 0)
        return cost_of(job.spec.model, tokens_in, tokens_out, self.prices), tokens_in + tokens_out

    def settle(self, job: Job) -> bool:
        """Settle the job's reservation from its usage (once: a repeat does nothing).
        An ended job's release settles it in the same call (`Admission.release`)."""
        usd, tokens = self.spent(job)
        settled = self._settle(keys=[keys.budget_reservations()], args=[job.id, repr(usd), tokens])
        return bool(settled)

    def state(self, scope: str, now: float) -> dict[str, Any]:
        """Spend, reserved and remaining of one budget in its current period."""
        budget = self.budgets[scope]
        period, until = budget.period_bounds(now)
        raw = self.redis.hgetall(budget.key(now))
        values = {_text(k): float(v) for k, v in raw.items()}
        state: dict[str, Any] = {
            "scope": scope,
            "period": period,
            "resets_at": until,
            "over": budget.over,
        }
        for unit, field, limit in (("usd", "usd", budget.usd), ("tokens", "tok", budget.tokens)):
            spent = max(0.0, values.get(f"{field}_spent", 0.0))
            reserved = max(0.0, values.get(f"{field}_reserved", 0.0))
            if unit == "tokens":
                spent, reserved = int(spent), int(reserved)
            state[unit] = {
                "limit": limit,
                "spent": spent,
                "reserved": reserved,
                "remaining": None if limit is None else max(0.0, limit - spent - reserved),
            }
        return state

    def states(self, now: float) -> list[dict[str, Any]]:
        return [self.state(scope, now) for scope in sorted(self.budgets)]

    def refusing(self, spec: JobSpec, now: float) -> dict[str, Any] | None:
        """The state of a `fail` budget the job falls under that has no room left for it
        (what the gateway answers 429 with), or None."""
        usd, tokens = self.estimate(spec)
        for scope in scopes_of(spec):
            budget = self.budgets.get(scope)
            if budget is None or budget.over != "fail":
                continue
            state = self.state(scope, now)
            for unit, need in (("usd", usd), ("tokens", tokens)):
                room = state[unit]["remaining"]
                if room is not None and need > room:
                    return state
        return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
