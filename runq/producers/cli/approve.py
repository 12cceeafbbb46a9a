"""`runq approve JOB CALL_ID [--deny --reason TEXT]`: a person decides a waiting tool call.

Without CALL_ID it lists the job's calls that wait (or waited) for a person. A decision
is written once (`runs.approvals`): deciding a call again, or one whose job ended, says
so and exits 1, since the caller believed the call was still waiting.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from runq.producers.cli import jobs


def _line(approval: dict[str, Any], now: float) -> str:
    state = approval["status"]
    if state == "pending":
        state += f" ({max(0, int(approval['deadline'] - now))}s left)"
    elif approval.get("reason"):
        state += f" ({approval['reason']})"
    return f"{approval['call_id']}  {approval['name']}({approval['arguments']})  {state}"


def cmd_approve(args: argparse.Namespace) -> int:
    from runq.errors import ApprovalDecidedError, JobAlreadyEndedError

    client = jobs._client()
    if args.call_id is None:
        found = client.approvals(args.job_id)
        if args.json:
            print(json.dumps(found, indent=2))
        elif not found:
            print(f"job {args.job_id} has no tool call that waits for approval")
        else:
            now = time.time()
            print("\n".join(_line(a, now) for a in found))
        return 0
    if args.reason and not args.deny:
        raise SystemExit("error: --reason goes with --deny (it is what the model is told)")
    try:
        decided = client.decide(args.job_id, args.call_id, not args.deny, args.reason)
    except (ApprovalDecidedError, JobAlreadyEndedError) as err:
        print(err)
        return 1
    if args.json:
        print(json.dumps(decided, indent=2))
    else:
        print(f"{decided['status']}: {decided['name']} call {decided['call_id']} of {args.job_id}")
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "approve",
        help="approve or deny a tool call that waits for a person",
        description="Approve (or --deny) a tool call that waits for a person; the job "
        "resumes. Without CALL_ID, list the job's calls that wait for approval.",
    )
    p.add_argument("job_id", help="the job whose call waits (status waiting_approval)")
    p.add_argument("call_id", nargs="?", default=None,
                   help="the call's id (event approval.requested); omit to list them")  # fmt: skip
    p.add_argument("--deny", action="store_true",
                   help="refuse the call: its tool never runs, the model is told")  # fmt: skip
    p.add_argument("--reason", metavar="TEXT",
                   help="with --deny: why (the model reads it as the tool's output)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_approve)
