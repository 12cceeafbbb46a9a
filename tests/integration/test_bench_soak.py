"""`python -m bench.soak`: a run of jobs leaves only keys that expire, and says what each
finished job keeps in Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JOBS = 30

pytestmark = [pytest.mark.integration, pytest.mark.timeout(200)]


@pytest.mark.parametrize("mode", ["poll", "webhook"])
def test_every_key_a_job_leaves_expires(tmp_path: Path, mode: str) -> None:
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--jobs", str(JOBS), "--batch", "15",
         "--mode", mode, "--latency-ms", "50", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["succeeded"] == JOBS, report["statuses"]
    assert [s["jobs"] for s in report["samples"]] == [15, 30]
    by_kind = report["keys"]["by_kind"]
    # Each finished job keeps its record, its events and its Celery result, and the
    # report finds them all (the warm-up jobs' too).
    for kind in ("runq:job:<id>", "runq:events:<id>", "celery-task-meta-<id>"):
        assert by_kind[kind]["keys"] == JOBS + 4, (kind, by_kind[kind])
        assert by_kind[kind]["bytes_per_key"] > 0
    assert report["redis_bytes_per_finished_job"] > 0
    # Only the fleet's own keys live without a TTL: none of them is a job's.
    without_ttl = report["keys"]["without_ttl"]
    assert "_kombu.binding.runs" in without_ttl  # the audit does see keys without a TTL
    per_job = {kind: n for kind, n in without_ttl.items() if "<id>" in kind or n > 2}
    assert not per_job, per_job
