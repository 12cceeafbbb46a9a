"""`python -m bench.chaos` (the reliability harness, docs/reliability.md) still runs.

The harness is run by hand (`make chaos`), so nothing caught it when the package move
left its workers without their tool modules: every job failed `unknown_tool` for weeks.
This smoke run keeps it working without its minutes of kills: a handful of jobs in
webhook mode, with the sandbox dropping and duplicating deliveries so the safety look
has work, and no SIGKILL or Redis restart (`--kills 0`; those need the jobs' leases to
run out, a minute or more, so they stay in the full run).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JOBS = 6

pytestmark = [pytest.mark.integration, pytest.mark.timeout(200)]


def test_the_chaos_harness_accounts_for_every_job_in_webhook_mode(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--mode", "webhook", "--jobs", str(JOBS),
         "--kills", "0", "--faults", "429=0.2,500=0.1", "--safety-poll", "2",
         "--webhook-faults", "webhook_drop=0.4,webhook_duplicate=0.3",
         "--timeout", "120", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["mode"] == "webhook"
    assert report["succeeded"] == JOBS, report
    assert report["lost"] == 0 and report["duplicate_tool_executions"] == 0, report
    assert report["tool_executions"] == JOBS  # the scripted `append_note` ran, once a job
    assert report["published"] == JOBS and report["in_result_backend"] == JOBS
    assert report["leased_after_the_end"] == 0 and report["in_flight_after_the_end"] == 0
    assert report["workers_exited_on_their_own"] == []
    hooks = report["webhooks"]
    assert hooks["dropped"] >= 1 and hooks["duplicated"] >= 1, hooks
    # Each job's run ended twice (the tool round, then the answer), and each end was
    # taken by a step: the dropped deliveries' by a safety look (due within 5 s here, so
    # a Celery countdown, `runq.jobs.look`; a longer one comes through `runq.wake.look`).
    taken = report["run_ends_taken_by"]
    assert sum(taken.values()) >= 2 * JOBS, taken
    assert taken.get("runq.jobs.look", 0) + taken.get("runq.wake.look", 0) >= 1, taken
