"""Serialising a job record: `dataclasses.asdict` against runq's shallow `to_dict`.

Every step's commit writes the job record (a job with one tool round has seven steps,
some committing more than once). Both ways are timed side by side in one process on the
same record, shaped like a finished one-tool-round job, after checking that they produce
the same JSON.

    python -m bench.record_dump
"""

from __future__ import annotations

import json
import timeit
from dataclasses import asdict

from runq.runs.job import Job, JobSpec
from runq.runs.store import _dump

ROUNDS = 20_000


def sample_job() -> Job:
    spec = JobSpec(input="What is 12 * 7?", model="gpt-5-mini", tools=["calculator"],
                   metadata={"sandbox_script": "[[...]]"})  # fmt: skip
    job = Job.new(spec, "job-1")
    job.handle = {"response_id": "resp_abc"}
    job.tool_calls = [
        {"call_id": f"call_{i}", "name": "calculator", "arguments": '{"expression": "12*7"}',
         "output": "84", "round": 1}
        for i in range(2)
    ]  # fmt: skip
    job.attempts = [{"link": "responses:gpt-5-mini", "attempt": 0, "run_id": "resp_abc"}]
    job.chain = "default"
    job.timings = {"queued_at": 1.0, "started_at": 2.0, "run_created_at": 2.1}
    job.usage = {"input_tokens": 50, "output_tokens": 20, "total_tokens": 70}
    return job


def dump_with_asdict(job: Job) -> str:
    """What `runs.store._dump` did before: a deep copy through `asdict`, then JSON."""
    data = asdict(job)
    version = data.pop("version")
    return json.dumps({"version": version, **data}, separators=(", ", ": "))


def main() -> int:
    job = sample_job()
    assert json.loads(dump_with_asdict(job)) == json.loads(_dump(job)), "outputs differ"
    before = timeit.timeit(lambda: dump_with_asdict(job), number=ROUNDS) / ROUNDS
    after = timeit.timeit(lambda: _dump(job), number=ROUNDS) / ROUNDS
    print(f"asdict: {before * 1e6:.1f} µs per record; to_dict: {after * 1e6:.1f} µs per record")
    print(f"saved per 10 records written: {(before - after) * 10 * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
