"""Waiting on a large `runq ask` batch: what one look at N unfinished jobs costs.

`runq ask` waits for its jobs in two ways (`runq.producers.ask`): reading every unfinished
record (one MGET, every few seconds) and reading what is new in their event streams
(one XREAD, between those). This builds N unfinished ask jobs in a real Redis (records
and event streams as a running job has them), then times each way side by side: the
waiting process's CPU per look, the wall time per look, and the bytes Redis sends back.
Nothing changes while it runs, which is the common case between two answers.

    python -m bench.ask_wait                 # N = 1000 and 5000
    python -m bench.ask_wait --jobs 20000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from runq.config.settings import load_settings
from runq.producers.ask.corpus import Corpus
from runq.producers.ask.plan import DEFAULT_INSTRUCTIONS
from runq.producers.ask.progress import _follow, _poll
from runq.producers.ask.report import AskReport
from runq.producers.client.sync import Client
from runq.runs.job import RUNNING, Job, JobSpec
from runq.worker.launcher import EmbeddedRedis

LOOKS = 20


def _unfinished_batch(client: Client, jobs: int) -> AskReport:
    """N jobs as `runq ask` leaves them while the backend works: running, three events."""
    report = AskReport(corpus=Corpus(), questions=[])
    for n in range(jobs):
        question = f"What does section {n} of the manual say about the warranty?"
        spec = JobSpec(
            input=question,
            instructions=DEFAULT_INSTRUCTIONS,
            vector_store_ids=["vs_0123456789abcdef"],
            metadata={"runq_ask": f"{n:032x}", "corpus": "0123456789abcdef"},
        )
        new = Job.new(spec.validate(), f"ask_{n:032x}")
        client.store.create(new, [{"type": "job.status", "status": "queued"}],
                            lease_until=time.time() + 3600)  # fmt: skip
        claim = client.store.claim(new.id, lock_seconds=5)
        job = claim.job
        assert job is not None
        job.handle = {"response_id": f"resp_{n:032x}"}
        job.move(RUNNING)
        events = [{"type": "job.status", "status": RUNNING, "attempt": 0},
                  {"type": "run.created", "response_id": job.handle["response_id"]}]  # fmt: skip
        assert client.store.commit(job, events, owner=claim.owner, lease_until=time.time() + 3600)
        report.job_ids.append(job.id)
        report.questions.append(question)
    return report


def _sent_bytes(client: Client) -> int:
    return int(client.redis.info("stats")["total_net_output_bytes"])


def _time(looks: int, look: Any, client: Client) -> dict[str, float]:
    sent, cpu, wall = _sent_bytes(client), time.process_time(), time.perf_counter()
    for _ in range(looks):
        look()
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    sent = _sent_bytes(client) - sent
    return {
        "cpu_ms_per_look": round(1000 * cpu / looks, 2),
        "wall_ms_per_look": round(1000 * wall / looks, 2),
        "kb_from_redis_per_look": round(sent / looks / 1024, 1),
    }


def measure(jobs: int, looks: int = LOOKS) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="runq-ask-wait-"))
    server = EmbeddedRedis(home).start()
    try:
        client = Client(server.url, load_settings(redis_url=server.url, home=home))
        report = _unfinished_batch(client, jobs)
        cursors: dict[str, str] = {}
        _follow(client, report, cursors, block_ms=1)  # the first look reads each history
        assert len(cursors) == jobs and not report.results
        records = _time(looks, lambda: _poll(client, report), client)
        streams = _time(looks, lambda: _follow(client, report, cursors, block_ms=1), client)
        assert not report.results  # nothing ended: both looks found nothing to keep
    finally:
        server.stop()
    return {"jobs": jobs, "looks": looks, "records_mget": records, "events_xread": streams}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, action="append", help="N (repeat)")
    args = parser.parse_args(argv)
    results = [measure(n) for n in (args.jobs or [1000, 5000])]
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
