"""Wait for a batch's answers with a live progress bar (done, failed, fallback, rate).

Answers are seen as their final events arrive: one XREAD over the unfinished jobs'
event streams costs what changed, not the size of the batch. Every `RECHECK_SECONDS`
the records themselves are read again (one MGET), the truth also for a job whose stream
expired or was trimmed. Ctrl-C stops the waiting, not the jobs (`AskInterrupted`).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from runq.producers.ask.report import AskInterrupted, AskReport
from runq.producers.client.sync import Client
from runq.runs import keys
from runq.runs.job import TERMINAL, Job

if TYPE_CHECKING:
    from rich.console import Console

# How long one look at the jobs' event streams may block before the bar is redrawn, the
# shortest gap between two looks (events that come in a burst are read together), and
# how often every unfinished record is read again: the records are the truth, also for
# a job whose stream expired or was trimmed.
REDRAW_SECONDS = 0.2
MIN_GAP_SECONDS = 0.05
RECHECK_SECONDS = 5.0


def _poll(client: Client, report: AskReport) -> None:
    """Read every unfinished job's record (one MGET) and keep the results of those ended."""
    pending = [j for j in report.job_ids if j not in report.results]
    if not pending:
        return
    for job_id, raw in zip(pending, client.redis.mget([keys.job(j) for j in pending]), strict=True):
        if not raw:
            continue
        job = Job.from_dict(json.loads(raw))
        if job.status in TERMINAL:
            report.results[job_id] = job.result()


def _follow(client: Client, report: AskReport, cursors: dict[str, str], block_ms: int) -> None:
    """Read what is new in the unfinished jobs' event streams (one XREAD); keep the results
    the final events carry. Costs what changed, not the size of the batch."""
    pending = [j for j in report.job_ids if j not in report.results]
    found = client.events.wait_many({j: cursors.get(j, "0-0") for j in pending}, block_ms)
    for job_id, events in found.items():
        cursors[job_id] = events[-1].id
        final = next((e for e in events if e.final), None)
        if final is not None and isinstance(final.data.get("result"), dict):
            report.results[job_id] = final.data["result"]


def wait(
    client: Client,
    report: AskReport,
    *,
    timeout: float,
    console: Console,
) -> None:
    """Wait for every job with a live progress bar; Ctrl-C raises `AskInterrupted`.

    Answers are seen as their final events arrive (an XREAD over the unfinished jobs'
    streams), not on the next turn of a polling loop; every `RECHECK_SECONDS` the records
    themselves are read again.
    """
    if report.pending == 0:
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    started = time.monotonic()
    deadline = started + timeout
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
    )
    cursors: dict[str, str] = {}
    recheck_at = started
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("answering", total=len(report.job_ids), stats="")
        try:
            while True:
                looked = time.monotonic()
                if looked >= recheck_at:
                    _poll(client, report)
                    recheck_at = looked + RECHECK_SECONDS
                else:
                    block = min(REDRAW_SECONDS, max(deadline - looked, 0.001))
                    _follow(client, report, cursors, int(block * 1000))
                elapsed = max(time.monotonic() - started, 1e-6)
                fallback = sum(bool(r.get("fallback_used")) for r in report.results.values())
                rate = (len(report.results) - report.reused_results) / elapsed
                stats = (
                    f"done {report.done}  failed {report.failed}  fallback {fallback}  {rate:.1f}/s"
                )
                progress.update(task, completed=len(report.results), stats=stats)
                if report.pending == 0 or time.monotonic() > deadline:
                    return
                time.sleep(max(0.0, looked + MIN_GAP_SECONDS - time.monotonic()))
        except KeyboardInterrupt:
            raise AskInterrupted(report) from None
