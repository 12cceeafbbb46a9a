"""Batch document Q&A: `runq ask DOCS... --questions FILE --out results.jsonl`.

1. Collect the documents (folders recurse; unsupported files are listed with a reason),
   upload each content once and build one vector store (see `ask.corpus`);
   or, with `--vector-store ID`, search the user's own store, adding the documents given.
2. Enqueue one Responses job per question with `vector_store_ids=[store]`. Job ids are
   deterministic: `ask_<digest>` where the digest covers the corpus content (file
   hashes, not file ids), the question and the options that change an answer (backend,
   model, mode, instructions). A re-run therefore finds its earlier jobs and reuses the
   finished results.
3. Failed or cancelled answers run again under a **new id with a retry counter**
   (`ask_<digest>-r1`, `-r2`, ...): the failed record stays for post-mortems (it expires
   with the other results) and nothing is ever deleted or overwritten. A re-run looks
   up the highest existing attempt of each question.
4. Wait with a live progress bar (done, failed, fallback, rate), reading what is new in
   the unfinished jobs' event streams (one XREAD for all of them); write the results.

The job records are looked up *before* the backend is touched: when every question
already has an answer (or a job still running), a re-run reads Redis only — no upload
check, no vector store call, and neither the `openai` client, Celery nor redis-py is
imported (the reads go over `Client.reads`), so it costs little more than the
interpreter's start.

Ctrl-C stops waiting, not the jobs: they keep running in the workers, and the same
command collects them later.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runq.errors import RunqError
from runq.producers.ask import corpus as ask_corpus
from runq.producers.ask.corpus import Corpus
from runq.producers.client.sync import Client
from runq.runs import keys
from runq.runs.job import CANCELLED, FAILED, TERMINAL, Job
from runq.worker.discovery import resolve_base_url

if TYPE_CHECKING:
    import openai
    from rich.console import Console

MAX_ATTEMPTS = 50
ANSWER_OPTIONS = ("backend", "model", "mode", "instructions")
DEFAULT_INSTRUCTIONS = (
    "Answer the question from the provided files only and cite the file you used. "
    "If the files do not contain the answer, say that you could not find it."
)


class AskInterrupted(RunqError):
    """Ctrl-C while waiting: the jobs keep running; the same command collects them."""

    def __init__(self, report: AskReport) -> None:
        super().__init__("interrupted")
        self.report = report


@dataclass
class AskReport:
    """What one `runq ask` did; the counters say what a re-run reused."""

    corpus: Corpus
    questions: list[str]
    job_ids: list[str] = field(default_factory=list)
    submitted: int = 0
    reused_results: int = 0
    in_flight: int = 0  # found running from an earlier invocation
    retried: int = 0
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # job id -> result
    ingestion_failures: list[tuple[str, str]] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def done(self) -> int:
        return sum(r["status"] == "succeeded" for r in self.results.values())

    @property
    def failed(self) -> int:
        return sum(r["status"] != "succeeded" for r in self.results.values())

    @property
    def pending(self) -> int:
        return len(self.job_ids) - len(self.results)

    def counters(self) -> dict[str, Any]:
        c = self.corpus
        return {
            "documents": len(c.documents),
            "skipped": len(c.skipped),
            "uploaded": c.uploaded,
            "reused_uploads": c.reused_uploads,
            "vector_store_reused": c.vector_store_reused,
            "questions": len(self.questions),
            "submitted": self.submitted,
            "reused_results": self.reused_results,
            "in_flight": self.in_flight,
            "retried": self.retried,
            "succeeded": self.done,
            "failed": self.failed,
            "pending": self.pending,
            "elapsed_s": round(self.elapsed, 3),
        }


def read_questions(path: str | Path) -> list[str]:
    """One question a line; blank lines and `#` comments are ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ask_corpus.CorpusError(f"questions file {str(path)!r} does not exist") from None
    except UnicodeDecodeError as err:
        raise ask_corpus.CorpusError(
            f"questions file {str(path)!r} is not UTF-8 text ({err.reason} at byte {err.start})"
        ) from None
    except OSError as err:
        raise ask_corpus.CorpusError(
            f"cannot read questions file {str(path)!r}: {err.strerror or err}"
        ) from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


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


def openai_client(client: Client) -> openai.OpenAI:
    import openai

    base_url = resolve_base_url(client.settings)
    if not base_url and not client.settings.openai_api_key:
        raise ask_corpus.CorpusError(
            "no backend to upload documents to: set OPENAI_BASE_URL (or OPENAI_API_KEY), "
            "or run `runq up` in this folder first"
        )
    return openai.OpenAI(
        api_key=client.settings.api_key_value(),
        base_url=base_url,
        timeout=client.settings.request_timeout,
        max_retries=3,
    )


@dataclass(frozen=True)
class ToSubmit:
    """A question with no usable job yet, and the id its new job will have."""

    question: str
    job_id: str
    digest: str


def plan(client: Client, report: AskReport, resolved: dict[str, Any]) -> list[ToSubmit]:
    """Adopt the questions' earlier jobs; return the questions that need a new one.

    A finished answer is reused, a running job is waited for, and a failed or cancelled
    one gets a new attempt. Reads Redis only.
    """
    fingerprint = report.corpus.fingerprint
    digests = [question_digest(fingerprint, q, resolved) for q in report.questions]
    todo: list[ToSubmit] = []
    for question, digest, (attempt, job) in zip(
        report.questions, digests, latest_attempts(client, digests), strict=True
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
        todo.append(ToSubmit(question, job_id, digest))
    return todo


def submit(
    client: Client, report: AskReport, todo: Sequence[ToSubmit], resolved: dict[str, Any]
) -> None:
    """Enqueue one file_search job per question in `todo` (the corpus is indexed)."""
    corpus = report.corpus
    assert corpus.vector_store_id is not None
    for item in todo:
        client.submit(
            item.question,
            job_id=item.job_id,
            vector_store_ids=[corpus.vector_store_id],
            metadata={"runq_ask": item.digest, "corpus": corpus.fingerprint[:16]},
            **resolved,
        )
        report.submitted += 1


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


def collect(paths: Sequence[str], console: Console, *, required: bool = True) -> Corpus:
    """Find the documents; print what was skipped and why. Reads files only."""
    from rich.markup import escape

    corpus = ask_corpus.collect(paths)
    for path, reason in corpus.skipped:
        console.print(f"[yellow]skipped[/] {escape(str(path))}: {escape(reason)}")
    if required and not corpus.documents:
        raise ask_corpus.CorpusError(
            "no supported documents found (pdf, docx, txt, md, html, json)"
        )
    return corpus


def prepare(
    client: Client, corpus: Corpus, console: Console, *, ingest_timeout: float = 600.0
) -> None:
    """Upload what the backend does not have, build or reuse the vector store, index."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    api = openai_client(client)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
    ) as progress:
        up = progress.add_task("uploading", total=len(corpus.documents))
        ask_corpus.upload(corpus, api, client.redis, on_file=lambda _d, _r: progress.advance(up))
        if corpus.named_store is not None:
            store_id = ask_corpus.named_store(corpus, api)
        else:
            store_id = ask_corpus.vector_store(corpus, api, client.redis)
        ingest = progress.add_task("indexing", total=len(corpus.documents))
        failures = ask_corpus.wait_ingested(
            api,
            store_id,
            timeout=ingest_timeout,
            on_progress=lambda done, total: progress.update(ingest, completed=done, total=total),
        )
    ask_corpus.remember_failures(client.redis, store_id, failures)
    not_indexed(corpus, failures, console)


def not_indexed(corpus: Corpus, failures: Sequence[tuple[str, str]], console: Console) -> None:
    """List the files the vector store failed to ingest, as skipped, with the reason."""
    from rich.markup import escape

    names = {fid: doc.name for fid, doc in corpus.by_file_id().items()}
    for file_id, error in failures:
        name = names.get(file_id, file_id)
        corpus.skipped.append((name, f"ingestion failed: {error}"))
        console.print(f"[yellow]not indexed[/] {escape(name)}: {escape(str(error))}")


def run_ask(
    client: Client,
    paths: Sequence[str],
    questions: Sequence[str],
    *,
    console: Console | None = None,
    timeout: float = 900.0,
    vector_store: str | None = None,
    **options: Any,
) -> AskReport:
    """Answer `questions` from the documents under `paths`; see the module docstring.

    With `vector_store`, search that existing store instead of one runq builds: the
    documents under `paths`, if any, are added to it.
    """
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    started = time.monotonic()
    if not questions:
        raise ask_corpus.CorpusError("no questions: give --questions FILE or -q TEXT")
    if vector_store is not None and not vector_store.strip():
        raise ask_corpus.CorpusError("--vector-store must name a vector store id")
    if not paths and vector_store is None:
        raise ask_corpus.CorpusError("nothing to search: give DOCS, or --vector-store ID")
    resolved = answer_options(client, options)
    # Refuse bad options (an empty model, an unknown backend) before any file is read.
    client.spec(questions[0], **resolved)
    corpus = collect(paths, console, required=vector_store is None)
    corpus.named_store = vector_store
    report = AskReport(corpus=corpus, questions=list(dict.fromkeys(questions)))
    todo = plan(client, report, resolved)
    if todo:
        prepare(client, corpus, console)
        submit(client, report, todo, resolved)
    else:
        # Every answer exists or is on its way: the corpus those jobs searched is the one
        # recorded in Redis for these contents; nothing is asked of the backend.
        not_indexed(corpus, ask_corpus.recall(corpus, client.reads), console)
    try:
        wait(client, report, timeout=timeout, console=console)
    finally:
        report.elapsed = time.monotonic() - started
    return report
