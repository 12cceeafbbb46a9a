"""`python -m bench.run --quick` (the CI smoke run of the benchmarks) works end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTENDERS = ("runq_poll", "runq_stream", "runq_webhook", "naive", "no_queue")
FIELDS = (
    "jobs", "makespan_s", "jobs_per_s", "result_latency_p50_ms", "result_latency_p99_ms",
    "worker_cpu_ms_per_job", "redis_cmds_per_job", "peak_rss_mb", "max_in_flight",
)  # fmt: skip

pytestmark = [pytest.mark.integration, pytest.mark.timeout(200)]


def test_quick_benchmark_accounts_for_every_job(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    for name in CONTENDERS:
        entry = report[name]
        for field in FIELDS:
            value = entry[field]
            assert isinstance(value, int | float) and not isinstance(value, bool), (name, field)
            assert math.isfinite(value), (name, field, value)
        assert entry["jobs"] > 0
        assert entry["accounted"] == entry["jobs"], (name, entry)
        assert entry["succeeded"] == entry["jobs"], (name, entry)
        assert entry["jobs_per_s"] > 0
    assert set(report["ratios"]) >= {"runq_poll_vs_no_queue", "runq_poll_vs_naive"}
    # Webhook mode: every result came through a webhook, not one poll.
    assert report["runq_webhook"]["polls_per_job"] == 0
    assert report["runq_webhook"]["webhooks"]["succeeded"] >= report["runq_webhook"]["jobs"]
