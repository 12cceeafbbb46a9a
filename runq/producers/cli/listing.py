"""`runq jobs`: recent jobs, newest first, so a job id lost from the scrollback is found
again (`runq status ID`, `runq result ID --wait`).

One line a job: id, status, age, the model (or, once it ended, the link that answered)
and the first words of its input. The list comes from `Client.jobs` (the recent-jobs
index the store writes with every new job; see `runs.recent`).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from runq.producers.cli import option_types
from runq.runs.recent import STATUSES, JobSummary

MAX_LIMIT = 1000
COLUMNS = ("JOB", "STATUS", "AGE", "MODEL/SOURCE", "INPUT")


def rows(summaries: list[JobSummary], now: float | None = None) -> list[tuple[str, ...]]:
    from runq.producers.cli.status_view import duration

    now = time.time() if now is None else now
    out: list[tuple[str, ...]] = []
    for s in summaries:
        age = s.age(now)
        answered_by = s.source or s.model
        out.append((s.job_id, s.status, "-" if age is None else duration(age), answered_by,
                    s.input))  # fmt: skip
    return out


def table(summaries: list[JobSummary], now: float | None = None) -> str:
    """The listing as aligned columns (the input, last, is not padded)."""
    body = rows(summaries, now)
    widths = [max(len(r[i]) for r in [COLUMNS, *body]) for i in range(len(COLUMNS) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(r, widths, strict=False)), r[-1]]).rstrip()
        for r in [COLUMNS, *body]
    )


def cmd_jobs(args: argparse.Namespace) -> int:
    from runq.producers.cli.jobs import _client

    found = _client("read from").jobs(status=args.status, limit=args.limit, tenant=args.tenant)
    if args.json:
        data: list[dict[str, Any]] = [s.to_dict() for s in found]
        print(json.dumps(data, indent=2))
    elif found:
        print(table(found))
    else:
        which = f" {args.status}" if args.status else ""
        print(f"no{which} jobs (a job is listed until its record expires, RUNQ_RESULT_EXPIRES "
              "after it ended)")  # fmt: skip
    return 0


def _limit(text: str) -> int:
    value = option_types.positive(text)
    if value > MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_LIMIT} (got {value})")
    return value


def add_commands(sub: Any) -> None:
    """Add `jobs` to the subcommands."""
    p = sub.add_parser("jobs", help="list recent jobs, newest first",
                       description="Recent jobs, newest first: id, status, age, the model "
                       "(or the link that answered) and the first words of the input.")  # fmt: skip
    statuses = ", ".join(STATUSES)
    p.add_argument("--status", choices=STATUSES, metavar="STATUS",
                   help=f"only jobs with this status: {statuses} (default: any)")  # fmt: skip
    p.add_argument("--limit", type=_limit, default=20, metavar="N",
                   help=f"list at most N jobs, 1 to {MAX_LIMIT}")  # fmt: skip
    p.add_argument("--tenant", metavar="NAME",
                   help="only the jobs one gateway tenant submitted (default: all)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_jobs)
