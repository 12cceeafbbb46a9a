"""Error text becomes job data redacted, as a log line is (fast: fakeredis, no worker).

The live test (`test_key_echo_live.py`) shows the whole path through a real worker; these
pin down each place an error's text is written.
"""

from __future__ import annotations

import json
import time

from runq.config.logging import register_secret
from runq.errors import BackendError
from runq.runs import keys
from runq.runs.chains import parse_chains
from runq.runs.job import Job, JobSpec, JobStatus
from runq.runs.links import LinkServices
from runq.runs.redaction import redact_result
from runq.runs.retry import RetryPolicies, RetryPolicy
from runq.runs.steps import Steps

SECRET = "registered-link-key-7f3a9c"
register_secret(SECRET)
ECHO = f"Incorrect API key provided: {SECRET}; also sk-abcdefghijklmnop and Bearer tok123456"


def test_errors_are_redacted_in_the_record_and_the_events(
    store, backend, scheduler, fake_redis
) -> None:
    chains = parse_chains({"two": [{"backend": "responses", "model": "a"},
                                   {"backend": "chat", "model": "b"}]})  # fmt: skip
    steps = Steps(
        store, lambda job, link: backend, scheduler, lambda j, r: {},
        services=LinkServices(fake_redis, chains=chains, default_chain="two"),
        retry=RetryPolicies(transient=RetryPolicy(max_attempts=2), test_mode=True),
    )  # fmt: skip
    backend.states = [
        BackendError(ECHO, code="server_error", retryable=True),  # retried: a job.retry event
        BackendError(ECHO, code="auth"),
        BackendError(ECHO, code="auth"),
    ]
    job = Job.new(JobSpec(input="hi").validate())
    store.create(job, [], lease_until=time.time() + 60)
    steps.run("start", job.id, 0)
    for _ in range(5):
        if store.get(job.id).terminal:
            break
        step, job_id, token, _ = scheduler.last()
        steps.run(step, job_id, token)
    ended = store.get(job.id)
    assert ended.status == JobStatus.FAILED
    stored = [fake_redis.get(keys.job(job.id)).decode()]
    stored += [f[b"data"].decode() for _, f in fake_redis.xrange(keys.events(job.id))]
    stored += [json.dumps(r) for r in scheduler.published]
    assert any('"job.retry"' in text for text in stored)
    for text in stored:
        assert SECRET not in text and "sk-abcdefghijklmnop" not in text and "tok123456" not in text
    assert "Incorrect API key provided: [redacted]" in ended.error["message"]


def test_a_result_from_an_old_record_is_redacted_on_its_way_out() -> None:
    raw = {
        "status": "failed",
        "output_text": None,
        "error": {"code": "auth", "message": ECHO},
        "attempts": [{"link": "responses:a", "code": "auth", "error": ECHO}],
    }
    shown = json.dumps(redact_result(raw))
    assert SECRET not in shown and "sk-abcdefghijklmnop" not in shown
    assert raw["error"]["message"] == ECHO  # the record's copy is not touched
