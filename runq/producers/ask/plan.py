"""Which questions need a new job: the ids that let a re-run reuse what exists.

A question's job id is `ask_<digest>`: the digest covers the corpus content (file
hashes, not file ids), the question and the options that change an answer (backend,
model, mode, instructions, and the output schema when one is given), so the same
command finds the same jobs. With `--per-file` each job is one document's: its digest
covers that document's content and the prompt instead, and the same rules apply. A failed or
cancelled answer runs again under `ask_<digest>-r1`, `-r2`, ...: the failed record
stays for post-mortems (it expires with the other results) and nothing is deleted or
overwritten. Planning reads Redis only, over `Client.reads`: a re-run whose answers all
exist never imports redis-py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runq.producers.ask.report import AskReport
from runq.producers.client.sync import Client
from runq.runs import keys
from runq.runs.job import CANCELLED, FAILED, Job

MAX_ATTEMPTS = 50
ANSWER_OPTIONS = ("backend", "model", "mode", "instructions")
DEFAULT_INSTRUCTIONS = (
    "Answer the question from the provided files only and cite the file you used. "
    "If the files do not contain the answer, say that you could not find it."
)


def answer_options(client: Client, options: dict[str, Any]) -> dict[str, Any]:
    """The options that change an answer, resolved against the settings' defaults."""
    s = client.settings
    resolved = {
        "backend": s.backend,
        "model": s.model,
        "mode": s.mode,
        "instructions": DEFAULT_INSTRUCTIONS,
    }
    resolved.update({k: v for k, v in options.items() if v is not None})
    return resolved


def question_digest(corpus_fingerprint: str, question: str, options: dict[str, Any]) -> str:
    shown = {k: options.get(k) for k in ANSWER_OPTIONS}
    if options.get("output_schema") is not None:  # absent otherwise: earlier ids stay valid
        shown["output_schema"] = options["output_schema"]
    if options.get("tier") is not None:  # a tier asks again: its cost is part of the ask
        shown["tier"] = options["tier"]
    payload = json.dumps([corpus_fingerprint, question, shown], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def attempt_id(digest: str, attempt: int) -> str:
    return f"ask_{digest}" if attempt == 0 else f"ask_{digest}-r{attempt}"


def latest_attempts(client: Client, digests: Sequence[str]) -> list[tuple[int, Job | None]]:
    """Per question, its highest attempt that has a record ((-1, None) when none has).

    One MGET for the whole batch, whatever its size, on the quick reads: a re-run whose
    answers all exist never imports redis-py.
    """
    ids = [attempt_id(d, n) for d in digests for n in range(MAX_ATTEMPTS)]
    records = client.reads.mget([keys.job(i) for i in ids]) if ids else []
    found: list[tuple[int, Job | None]] = []
    for q in range(len(digests)):
        mine = records[q * MAX_ATTEMPTS : (q + 1) * MAX_ATTEMPTS]
        last, job = -1, None
        for n, raw in enumerate(mine):
            if raw is not None:
                last, job = n, Job.from_dict(json.loads(raw))
        found.append((last, job))
    return found


@dataclass(frozen=True)
class ToSubmit:
    """A question with no usable job yet, and the id its new job will have.

    `index` is its place in the report's asks: with `--per-file`, the document's.
    """

    question: str
    job_id: str
    digest: str
    index: int = 0


def asks(report: AskReport) -> list[tuple[str, str]]:
    """(prompt, the fingerprint of what it searches) per job the report wants.

    A question searches the whole corpus; with `--per-file` the one prompt searches each
    document alone (`file:<sha256>`, never equal to a corpus fingerprint).
    """
    if report.per_file:
        (prompt,) = report.questions
        return [(prompt, f"file:{doc.sha256}") for doc in report.corpus.documents]
    return [(q, report.corpus.fingerprint) for q in report.questions]


def plan(client: Client, report: AskReport, resolved: dict[str, Any]) -> list[ToSubmit]:
    """Adopt the earlier jobs of the report's asks; return those that need a new one.

    A finished answer is reused, a running job is waited for, and a failed or cancelled
    one gets a new attempt. Reads Redis only.
    """
    wanted = asks(report)
    digests = [question_digest(scope, q, resolved) for q, scope in wanted]
    todo: list[ToSubmit] = []
    for index, ((question, _), digest, (attempt, job)) in enumerate(
        zip(wanted, digests, latest_attempts(client, digests), strict=True)
    ):
        if job is not None and job.status not in (FAILED, CANCELLED):
            report.job_ids.append(job.id)
            if job.terminal:
                report.reused_results += 1
                report.results[job.id] = job.result()
            else:
                report.in_flight += 1
            continue
        if job is not None:
            report.retried += 1
        job_id = attempt_id(digest, attempt + 1)
        report.job_ids.append(job_id)
        todo.append(ToSubmit(question, job_id, digest, index))
    return todo
