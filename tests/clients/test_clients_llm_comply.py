"""The Open Responses compliance suite (``llm-comply``) against the sandbox.

Every non-advisory test must pass. ``gpt-5-mini`` is a reasoning model, so the
reasoning-summary test runs instead of being skipped; the advisory tests are the two
compaction ones (many providers lack ``/responses/compact``), and they pass too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ADVISORY = {"compact-response", "compact-missing-model"}


def comply(base_url: str, model: str) -> dict[str, str]:
    command = [
        str(Path(sys.executable).with_name("llm-comply")),
        *("-u", base_url, "-k", "sk-test", "-m", model, "--format", "open-responses", "--json"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    report = json.loads(done.stdout)
    return {r["id"]: r["status"] for r in report["results"]} | {
        f"{r['id']}:errors": "; ".join(r.get("errors") or []) for r in report["results"]
    }


def test_open_responses_compliance(base_url: str) -> None:
    results = comply(base_url, "gpt-5-mini")
    statuses = {k: v for k, v in results.items() if ":" not in k}
    assert len(statuses) >= 13
    failed = {k: results[f"{k}:errors"] for k, v in statuses.items() if v != "passed"}
    assert not failed, failed
    assert set(statuses) >= ADVISORY
