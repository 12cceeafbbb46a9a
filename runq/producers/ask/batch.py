"""One `runq ask DOCS... --questions FILE --out results.jsonl`, from start to end.

1. Collect the documents (folders recurse; unsupported files are listed with a reason).
2. Plan (`ask.plan`): look up each question's earlier job by its deterministic id;
   finished answers are reused, running jobs waited for, failed ones tried again.
3. Only when some question needs a new job: upload each content once and build one
   vector store (`ask.corpus`), or, with `--vector-store ID`, search the user's own
   store, adding the documents given; then enqueue one Responses job per question with
   `vector_store_ids=[store]`.
4. Wait with a live progress bar (`ask.progress`); the command writes the results
   (`ask.output`).

With `--schema FILE` (`ask.schema`) every job carries that output schema and the rows
hold one column per field. With `--per-file` (`ask.per_file`) there is one job per
document instead of one per question, each searching a store of that document alone;
its prompt is the questions given, else an extraction prompt built from the schema.
Planning, re-runs and resume are the same in both modes.

The job records are looked up *before* the backend is touched: when every question
already has an answer (or a job still running), a re-run reads Redis only — no upload
check, no vector store call, and neither the `openai` client, Celery nor redis-py is
imported (the reads go over `Client.reads`), so it costs little more than the
interpreter's start.

Ctrl-C stops waiting, not the jobs: they keep running in the workers, and the same
command collects them later.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runq.errors import ConfigurationError
from runq.producers.ask import corpus as ask_corpus
from runq.producers.ask import per_file as ask_per_file
from runq.producers.ask import schema as ask_schema
from runq.producers.ask.corpus import Corpus
from runq.producers.ask.plan import ToSubmit, answer_options, plan
from runq.producers.ask.progress import wait
from runq.producers.ask.report import AskReport
from runq.producers.ask.schema import OutputSchema
from runq.producers.backend_client import backend_client
from runq.producers.client.sync import Client

if TYPE_CHECKING:
    import openai
    from rich.console import Console
    from rich.progress import Progress


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


def openai_client(client: Client) -> openai.OpenAI:
    """The client the corpus is uploaded and indexed with (the workers' backend)."""
    try:
        return backend_client(client.settings, purpose="upload documents to", max_retries=3)
    except ConfigurationError as err:
        raise ask_corpus.CorpusError(str(err)) from None


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


def submit_per_file(
    client: Client,
    report: AskReport,
    todo: Sequence[ToSubmit],
    resolved: dict[str, Any],
    stores: dict[str, str],
) -> None:
    """Enqueue one job per document in `todo`, searching that document's own store."""
    for item in todo:
        doc = report.corpus.documents[item.index]
        client.submit(
            item.question,
            job_id=item.job_id,
            vector_store_ids=[stores[doc.sha256]],
            metadata={"runq_ask": item.digest, "document": doc.sha256[:16]},
            **resolved,
        )
        report.submitted += 1


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


def _progress(console: Console) -> Progress:
    """The uploading and indexing bars of `prepare` and `prepare_per_file`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        console=console,
    )  # fmt: skip


def prepare(
    client: Client, corpus: Corpus, console: Console, *, ingest_timeout: float = 600.0
) -> None:
    """Upload what the backend does not have, build or reuse the vector store, index."""
    api = openai_client(client)
    with _progress(console) as progress:
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


def prepare_per_file(
    client: Client,
    corpus: Corpus,
    todo: Sequence[ToSubmit],
    console: Console,
    *,
    ingest_timeout: float = 600.0,
) -> dict[str, str]:
    """Upload what the backend does not have; give each document in `todo` its own
    store (`ask.per_file`); return them by content hash."""
    api = openai_client(client)
    docs = [corpus.documents[item.index] for item in todo]
    with _progress(console) as progress:
        up = progress.add_task("uploading", total=len(corpus.documents))
        ask_corpus.upload(corpus, api, client.redis, on_file=lambda _d, _r: progress.advance(up))
        ingest = progress.add_task("indexing each file", total=len(docs))
        stores, failures = ask_per_file.stores(
            corpus, docs, api, client.redis, ingest_timeout=ingest_timeout,
            on_store=lambda _d: progress.advance(ingest),
        )  # fmt: skip
    not_indexed(corpus, failures, console)
    return stores


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
    schema: OutputSchema | dict[str, Any] | None = None,
    per_file: bool = False,
    **options: Any,
) -> AskReport:
    """Answer `questions` from the documents under `paths`; see the module docstring.

    With `vector_store`, search that existing store instead of one runq builds: the
    documents under `paths`, if any, are added to it. With `schema` (an
    `ask.schema.OutputSchema`, or the schema itself, checked the same way), every answer
    is JSON valid against it. With `per_file`, ask each document alone: the questions
    (joined) or, when none are given, an extraction prompt built from the schema.
    """
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    started = time.monotonic()
    if isinstance(schema, dict):
        schema = ask_schema.check(schema)
    prompts = _prompts(questions, schema, per_file=per_file, vector_store=vector_store)
    if vector_store is not None and not vector_store.strip():
        raise ask_corpus.CorpusError("--vector-store must name a vector store id")
    if not paths and vector_store is None:
        raise ask_corpus.CorpusError("nothing to search: give DOCS, or --vector-store ID")
    if schema is not None:
        options["output_schema"] = schema.schema
        if options.get("instructions") is None:
            options["instructions"] = (
                ask_schema.EXTRACTION_INSTRUCTIONS if per_file else ask_schema.QUESTION_INSTRUCTIONS
            )
    resolved = answer_options(client, options)
    # Refuse bad options (an empty model, an unknown backend) before any file is read.
    client.spec(prompts[0], **resolved)
    if resolved["backend"] == "chat":
        # Chat Completions has no file_search: the job would answer without the documents.
        raise ask_corpus.CorpusError(
            "runq ask searches the documents with file_search, which the chat backend "
            "does not run: use --backend responses or assistants"
        )
    corpus = collect(paths, console, required=vector_store is None)
    corpus.named_store = vector_store
    report = AskReport(
        corpus=corpus,
        questions=prompts,
        per_file=per_file,
        fields=schema.fields if schema is not None else (),
    )
    todo = plan(client, report, resolved)
    if todo and per_file:
        stores = prepare_per_file(client, corpus, todo, console)
        submit_per_file(client, report, todo, resolved, stores)
    elif todo:
        prepare(client, corpus, console)
        submit(client, report, todo, resolved)
    else:
        # Every answer exists or is on its way: the corpus those jobs searched is the one
        # recorded in Redis for these contents; nothing is asked of the backend.
        recall = ask_per_file.recall if per_file else ask_corpus.recall
        not_indexed(corpus, recall(corpus, client.reads), console)
    try:
        wait(client, report, timeout=timeout, console=console)
    finally:
        report.elapsed = time.monotonic() - started
    return report


def _prompts(
    questions: Sequence[str],
    schema: OutputSchema | None,
    *,
    per_file: bool,
    vector_store: str | None,
) -> list[str]:
    """What the jobs ask: each question; with `per_file`, one prompt for every document."""
    unique = list(dict.fromkeys(questions))
    if not per_file:
        if not unique:
            raise ask_corpus.CorpusError("no questions: give --questions FILE or -q TEXT")
        return unique
    if vector_store is not None:
        raise ask_corpus.CorpusError(
            "--per-file asks each document in a store of its own; it cannot search "
            "--vector-store (drop one of the two)"
        )
    if unique:
        return ["\n".join(unique)]
    if schema is None:
        raise ask_corpus.CorpusError(
            "--per-file needs the fields to extract (--schema FILE) or a question to ask "
            "of every file (--questions FILE or -q TEXT)"
        )
    return [ask_schema.extraction_prompt(schema)]
