"""The batcher: batch-tier jobs answered through the Batch API (docs/tiers.md).

* `queue` — the data in Redis: queued lines per (link, endpoint), batches, outcomes;
* `lines` — a job's request as a batch line, and a line's answer as a run state;
* `waiting` — the job's side: enroll in `start`, the `batch` step;
* `driver` — the batcher itself: cut, upload, create (exactly once), poll, fan out.
"""
