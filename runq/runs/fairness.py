"""Fair admission: new jobs start in weighted round-robin order across tenants.

Without it jobs start first in, first out, and a tenant that submits 10,000 jobs puts
every other tenant's job behind all of them. With it (the default; `RUNQ_FAIR_ADMISSION`
turns it off) a producer does not send a new job's start message: it puts the job id in
its tenant's waiting list (`fair_push.lua`; no tenant is the tenant `default`). Every
worker's pump (`worker.signals`, twice a second, and at once each time a start step
begins) moves waiting jobs into the Celery `runs` queue with one atomic Lua call
(`fair_admit.lua`), so there is no dispatcher process that could die: whichever worker
calls, the round-robin goes on from where Redis says it is.

Admission at the push (`admit_at_push`, a worker's choice, off by default): an
uncontended job does not wait for a pump. The push itself admits it (`enter`) when the
round-robin's next call would take it anyway, and the producer sends its start. That is
when no job waits in any lane (so no tenant's turn is passed over), the job falls under
no budget and its tenant has no rate (those jobs always go through the pump), its
tenant is under its cap and the window has room. The caps, the window and which tenants
and scopes have rates and budgets are the workers' (their heartbeats publish them,
`policy`; none published lately: the job waits), so a producer configured differently
from the workers admits nothing they would hold. It saves an uncontended job about ten
Redis commands and the wait for a pump (up to half a second), and changes nothing for a
job that waits behind others; but it is off because the fairness benchmark compares a
late tenant's start time behind a backlog with its time alone on an idle fleet, and
alone it then no longer pays that wait: the ratio goes from under 2x to 3-5x while the
late tenant's own time behind the backlog stays the same.

The order: tenant by tenant in name order, each taking up to its weight
(`RUNQ_TENANT_WEIGHTS="acme=3,beta=1"`, default 1) of its oldest jobs before the next
tenant's turn. Only a small **window** of admitted jobs wait in the Celery queue at any
time (`RUNQ_FAIR_WINDOW`; 0 derives it: twice the slots of the live workers, at least
8), so a tenant that arrives late waits behind at most a window of jobs, not a backlog.
A tenant alone on the fleet still gets all of it: the window refills as fast as starts
take jobs from it. A per-tenant cap (`RUNQ_TENANT_CAPS="acme=20"`) bounds the jobs it
has admitted and not yet ended; a tenant at its cap is skipped, not waited for. Rates
(`RUNQ_TENANT_RPM="acme=60"`, `RUNQ_TENANT_TPM="acme=100000"`: starts and estimated
tokens per minute) skip a tenant until its own bucket has room; they come on top of
the per-link limits (`runs.ratelimit`) that every start still takes from.

Budgets (`runs.budgets`) are checked and reserved in the same Lua call. A job over a
`wait` budget holds its tenant's turn (the tenant is looked at again every few seconds);
one over a `fail` budget comes back in `AdmitResult.refused` for the worker to end.

Crash safety: a waiting job keeps its lease pushed forward by the sweeper (it is waiting,
not lost: `is_waiting`); admitting it gives it a fresh lease, so a worker that dies
between the Lua call and the Celery send leaves a job the sweeper starts (a job admitted
at its push keeps its record's first lease, as short, for the producer's send). A job
leaves admission through `release` when it ends (`Publication`) or its record is gone
(sweeper): its in-flight count and its budget reservation are given back exactly once,
in one call (a job under no budget is marked so when admitted, and its release looks
for no reservation). It leaves the window when its start step begins, not at release.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from runq.runs import keys, lua
from runq.runs.budgets import DEFAULT_TENANT, BudgetBook, scopes_of
from runq.runs.job import Job
from runq.runs.replies import text

log = structlog.get_logger("runq.fairness")

# A waiting job's lease: the sweeper looks at it this often, and pushes it forward.
WAITING_LEASE = 3600.0
# An admitted job whose start has not run after this long no longer fills the window.
ADMITTED_STALE = 120.0
# The lease an admitted job gets: the sweeper starts it if its start message is lost.
ADMITTED_LEASE = 60.0
# A lane held by a budget is looked at again after this long (running jobs may settle
# below their estimate and give room back before the period ends).
BUDGET_RECHECK = 5.0
# The policy a worker publishes with its heartbeat (every 5 s) lapses after this long:
# with no live worker, no job is admitted at its push.
POLICY_FRESH = 15.0
# A worker's slots count in the derived window while its heartbeat is this fresh.
SLOTS_FRESH = 30.0
SLOTS_FORGOTTEN = 3600.0  # ... and is dropped once it has been quiet this long
MIN_WINDOW = 8
# The derived window an `admit` uses is read again after this long: workers say their
# slots every few seconds, and every start step admits (one HGETALL a call, for nothing).
WINDOW_REUSE = 1.0


def lane_of(job: Job) -> str:
    """The tenant whose turn a job waits for (`default` when it names none)."""
    return job.spec.tenant or DEFAULT_TENANT


@dataclass
class AdmitResult:
    """What one admission call did: jobs to start, jobs to fail, lanes held by a budget."""

    admitted: list[str] = field(default_factory=list)
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # job, scope, reason
    held: list[tuple[str, float, str, str]] = field(default_factory=list)  # lane, until, ...
    # The log context each admitted job's producer had (`request_id`...), by job id: its
    # start message carries it, as the producer's own send would have.
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)


class Admission:
    """The shared waiting lists and the round-robin over them (module docstring)."""

    def __init__(
        self,
        redis: Any,
        *,
        weights: dict[str, int] | None = None,
        caps: dict[str, int] | None = None,
        rpm: dict[str, int] | None = None,
        tpm: dict[str, int] | None = None,
        window: int = 0,
        budgets: BudgetBook | None = None,
        events_maxlen: int = 2000,
        admit_at_push: bool = False,
    ) -> None:
        self.redis = redis
        self.weights = dict(weights or {})
        self.caps = dict(caps or {})
        rpm, tpm = rpm or {}, tpm or {}
        self.rates = {lane: [rpm.get(lane, 0), tpm.get(lane, 0)] for lane in {*rpm, *tpm}}
        self.window = window
        self.budgets = budgets or BudgetBook(redis)
        self._push_script = lua.register(redis, "fair_push")
        self._release = redis.register_script(
            lua.source("budget_check") + lua.source("fair_release")
        )
        self._admit = redis.register_script(lua.source("budget_check") + lua.source("fair_admit"))
        self._window: tuple[float, int] | None = None  # (monotonic time read, window)
        # The workers' policy as this process last read it: (monotonic time read, policy).
        self._policy: tuple[float, dict[str, Any] | None] | None = None
        self.events_maxlen = events_maxlen  # for a waiting job's event (EventLog's)
        # A worker's choice: publish its policy, so producers admit uncontended jobs at
        # their push (`enter`). Off by default: see the module docstring.
        self.admit_at_push = admit_at_push

    # -- producers ---------------------------------------------------------------------
    def enter(self, job: Job, context: dict[str, Any] | None = None) -> bool:
        """A new job enters admission: True when it was admitted at once, and the caller
        sends its start now; else it waits in its tenant's list (`push`).

        At once only when the workers publish their policy (`admit_at_push`; read at
        most once a second here) and that is what the round-robin would do at its next
        call: no job waits in any lane, the policy holds no budget over the job and no
        rate over its tenant, its tenant is under its cap and the window has room
        (`fair_push.lua`). Its record's lease (short: `SUBMIT_LEASE`) stands for the
        admitted job's: a producer that dies before its send leaves a job the sweeper
        starts. A job that waits gets its `job.waiting` event in the same call; one
        admitted at once gets none (it never waited). `context`: as `push`, unused at
        once (the producer's own send carries it)."""
        lane = lane_of(job)
        policy = self._policy_now()
        at_once: tuple[int, int | None] | None = None  # the window, the lane's cap
        if (
            policy is not None
            and lane not in policy["rated"]
            and not any(scope in policy["budgeted"] for scope in scopes_of(job.spec))
        ):
            at_once = (int(policy["window"]), policy["caps"].get(lane))
        event = {"type": "job.waiting", "reason": "fair_share", "tenant": lane}
        return self._push(job, context, at_once, event) < 0

    def push(self, job: Job, context: dict[str, Any] | None = None) -> int:
        """Put a new job in its tenant's waiting list; returns its place (0: already in).
        `context`: the producer's log context that travels with the job (`request_id`).
        No `job.waiting` event (`enter` writes one)."""
        return self._push(job, context, None, None)

    def _push(
        self,
        job: Job,
        context: dict[str, Any] | None,
        at_once: tuple[int, int | None] | None,
        event: dict[str, Any] | None,
    ) -> int:
        usd, tokens = self.budgets.estimate(job.spec)
        lane = lane_of(job)
        entry: dict[str, Any] = {
            "lane": lane,
            "usd": usd,
            "tokens": tokens,
            "scopes": scopes_of(job.spec),
        }
        if context:
            entry["context"] = context
        now = time.time()
        window, cap = at_once or (0, None)
        waiting = json.dumps({"ts": now, **event}) if event else ""
        place = self._push_script(
            keys=[
                keys.fair("waiting"),
                keys.fair_lane_prefix() + lane,
                keys.fair("lanes"),
                keys.leases(),
                keys.fair("admitted"),
                keys.fair("inflight"),
                keys.fair("running"),
                keys.events(job.id),
            ],
            args=[job.id, json.dumps(entry), lane, repr(now + WAITING_LEASE),
                  repr(now) if at_once else "", window, "" if cap is None else cap,
                  waiting, self.events_maxlen],
        )  # fmt: skip
        return int(place)

    def _policy_now(self) -> dict[str, Any] | None:
        """The policy the workers published (`heartbeat`), read at most once per
        `WINDOW_REUSE` by this process; None when no worker published one lately."""
        seen = time.monotonic()
        if self._policy is None or seen - self._policy[0] >= WINDOW_REUSE:
            raw = self.redis.get(keys.fair("policy"))
            self._policy = (seen, json.loads(raw) if raw else None)
        return self._policy[1]

    # -- workers -----------------------------------------------------------------------
    def admit(
        self, now: float | None = None, window: int | None = None, started: str = ""
    ) -> AdmitResult:
        """Take the next jobs in round-robin order, up to the window's free room; first,
        `started` (a job whose start step began) leaves the window."""
        now = time.time() if now is None else now
        reply = self._admit(
            keys=[
                keys.fair("lanes"),
                keys.fair("state"),
                keys.fair("waiting"),
                keys.fair("admitted"),
                keys.fair("inflight"),
                keys.fair("running"),
                keys.leases(),
                keys.budget_reservations(),
            ],
            args=[
                repr(now),
                self._window_now(now) if window is None else window,
                ADMITTED_STALE,
                ADMITTED_LEASE,
                json.dumps(self.weights) if self.weights else "{}",
                1,
                json.dumps(self.caps) if self.caps else "{}",
                self.budgets.lua_arg(now),
                keys.fair_lane_prefix(),
                BUDGET_RECHECK,
                json.dumps(self.rates) if self.rates else "{}",
                keys.fair("rate:"),
                started,
                "1" if self.admit_at_push else "",
            ],
        )
        admitted, refused, held, entries = reply
        ids = [text(job) for job in admitted]
        contexts = {}
        for job_id, raw in zip(ids, entries, strict=True):
            context = json.loads(raw).get("context")
            if context:
                contexts[job_id] = context
        return AdmitResult(
            admitted=ids,
            contexts=contexts,
            refused=[(text(j), text(s), text(r)) for j, s, r in refused],
            held=[(text(lane), float(text(u)), text(s), text(j)) for lane, u, s, j in held],
        )

    def started(self, job_id: str) -> None:
        """A start step began: the job no longer fills the window."""
        self.redis.zrem(keys.fair("admitted"), job_id)

    def release(self, job_id: str, spent: tuple[float, int] | None = None) -> bool:
        """The job ended (or its record is gone): give back its place. Idempotent.
        `spent` (USD, tokens; `BudgetBook.spent`): settle its budget reservation, if it
        holds one, in the same call; None (its record is gone): leave it unsettled."""
        usd, tokens = ("", "") if spent is None else (repr(spent[0]), str(spent[1]))
        found = self._release(
            keys=[
                keys.fair("waiting"),
                keys.fair("inflight"),
                keys.fair("running"),
                keys.fair("lanes"),
                keys.budget_reservations(),
            ],
            args=[job_id, keys.fair_lane_prefix(), usd, tokens],
        )
        return bool(found)

    def is_waiting(self, job_id: str) -> bool:
        return bool(self.redis.hexists(keys.fair("waiting"), job_id))

    # -- the window ----------------------------------------------------------------------
    def heartbeat(self, worker: str, slots: int, now: float | None = None) -> None:
        """A worker says how many tasks it runs at once (the derived window sums them),
        and publishes the policy a producer admits an uncontended job by (`enter`)."""
        now = time.time() if now is None else now
        self.redis.hset(keys.fair("slots"), worker, json.dumps([slots, now]))
        if not self.admit_at_push:
            self._window = None  # read again at the next admit
            return
        window = self.current_window(now)
        self._window = (time.monotonic(), window)
        policy = json.dumps(self.policy(window))
        self.redis.set(keys.fair("policy"), policy, ex=int(POLICY_FRESH))

    def policy(self, window: int) -> dict[str, Any]:
        """What `enter` needs to admit a job at once: the window, the caps, the tenants
        with a rate and the scopes with a budget (their jobs always wait)."""
        return {
            "window": window,
            "caps": self.caps,
            "rated": {lane: 1 for lane in self.rates},
            "budgeted": {scope: 1 for scope in self.budgets.budgets},
        }

    def _window_now(self, now: float) -> int:
        """`current_window`, read at most once per `WINDOW_REUSE` by this process."""
        if self.window > 0:
            return self.window
        seen = time.monotonic()
        if self._window is None or seen - self._window[0] >= WINDOW_REUSE:
            self._window = (seen, self.current_window(now))
        return self._window[1]

    def current_window(self, now: float | None = None) -> int:
        """`RUNQ_FAIR_WINDOW`, or twice the slots of the workers seen lately (at least 8)."""
        if self.window > 0:
            return self.window
        now = time.time() if now is None else now
        slots, gone = 0, []
        for worker, raw in self.redis.hgetall(keys.fair("slots")).items():
            count, seen = json.loads(raw)
            if now - seen <= SLOTS_FRESH:
                slots += int(count)
            elif now - seen > SLOTS_FORGOTTEN:
                gone.append(worker)
        if gone:  # workers long gone (renamed, scaled down): no entry for ever
            self.redis.hdel(keys.fair("slots"), *gone)
        return max(MIN_WINDOW, 2 * slots)

    # -- reading -------------------------------------------------------------------------
    def waiting_by_tenant(self) -> dict[str, int]:
        lanes = [text(lane) for lane in self.redis.zrange(keys.fair("lanes"), 0, -1)]
        pipe = self.redis.pipeline(transaction=False)
        for lane in lanes:
            pipe.llen(keys.fair_lane_prefix() + lane)
        counts = zip(lanes, (int(n) for n in pipe.execute()), strict=True)
        # A lane whose list ran out stays listed until the round-robin comes to it again.
        return {lane: n for lane, n in counts if n}

    def inflight_by_tenant(self) -> dict[str, int]:
        raw = self.redis.hgetall(keys.fair("inflight"))
        return {text(k): int(v) for k, v in raw.items()}


def admission_from_settings(redis: Any, settings: Any) -> Admission:
    """The admission a producer or a worker uses, from `Settings`."""
    return Admission(
        redis,
        weights=settings.tenant_weights,
        caps=settings.tenant_caps,
        rpm=settings.tenant_rpm,
        tpm=settings.tenant_tpm,
        window=settings.fair_window,
        budgets=BudgetBook(redis, settings.budgets, output_tokens=settings.budget_output_tokens),
        events_maxlen=settings.events_maxlen,
        # (a setting of its own once `runq.config` has one; off until then)
        admit_at_push=settings.fair_admit_at_push,
    )
