"""`runq budgets`: each budget's spend, reservations and what is left, and who waits.

    runq budgets            # a table: budget, period, spent, reserved, remaining, resets
    runq budgets --json     # the same as JSON, with the waiting and in-flight jobs by tenant

Budgets are configured with RUNQ_BUDGETS (docs/tenancy.md); spend counts the usage the
backend reported for jobs that ended in the current period, reserved the estimates of
jobs admitted and not yet ended.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def _money(unit: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:.4f}" if unit == "usd" else f"{int(value):,}"


def report(client: Any, now: float) -> dict[str, Any]:
    """Budgets' states and admission's queues, as `--json` prints them."""
    from runq.runs.fairness import admission_from_settings

    admission = client.admission or admission_from_settings(client.redis, client.settings)
    return {
        "budgets": admission.budgets.states(now),
        "waiting": admission.waiting_by_tenant(),
        "in_flight": admission.inflight_by_tenant(),
        "fair_admission": client.settings.fair_admission,
    }


def rows(states: list[dict[str, Any]]) -> list[list[str]]:
    """One row per budget and unit it limits."""
    table = []
    for state in states:
        resets = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(state["resets_at"]))
        for unit in ("usd", "tokens"):
            figures = state[unit]
            if figures["limit"] is None:
                continue
            table.append(
                [
                    state["scope"],
                    state["period"],
                    unit,
                    _money(unit, figures["limit"]),
                    _money(unit, figures["spent"]),
                    _money(unit, figures["reserved"]),
                    _money(unit, figures["remaining"]),
                    state["over"],
                    resets,
                ]
            )
    return table


def cmd_budgets(args: argparse.Namespace) -> int:
    from runq.producers.cli.jobs import _client

    found = report(_client("read the budgets from"), time.time())
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    header = ["BUDGET", "PERIOD", "UNIT", "LIMIT", "SPENT", "RESERVED", "REMAINING", "OVER",
              "RESETS"]  # fmt: skip
    table = rows(found["budgets"])
    if not table:
        print("no budgets configured (RUNQ_BUDGETS; see docs/tenancy.md)")
    else:
        widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
        for row in [header, *table]:
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            print("  ".join(cells).rstrip())
    queues = sorted(set(found["waiting"]) | set(found["in_flight"]))
    if queues:
        print()
        print("TENANT".ljust(24) + "WAITING".rjust(9) + "IN FLIGHT".rjust(11))
        for tenant in queues:
            waiting, flying = found["waiting"].get(tenant, 0), found["in_flight"].get(tenant, 0)
            print(tenant.ljust(24) + str(waiting).rjust(9) + str(flying).rjust(11))
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("budgets", help="budgets' spend and what is left; jobs waiting by tenant",
                       description="Show each budget (RUNQ_BUDGETS) in its current period: "
                       "spent, reserved by running jobs, remaining, and when it resets; then "
                       "the jobs waiting for admission and in flight, by tenant.")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_budgets)
