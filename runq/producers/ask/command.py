"""The `runq ask` subcommand: its options, and the handler that prints and writes.

`cli.parser` calls `add_commands(subparsers)` on every start of `runq`, so this module
imports only argparse's option types; the handler imports the rest when `runq ask` runs.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from runq.producers.cli import option_types

EXIT_INTERRUPTED = 130


def _resume_hint(argv: list[str]) -> str:
    return "runq " + shlex.join(argv)


def cmd_ask(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from runq.config.settings import get_settings
    from runq.producers.ask import batch
    from runq.producers.ask import corpus as ask_corpus
    from runq.producers.ask import output as ask_output
    from runq.producers.ask import schema as ask_schema
    from runq.producers.ask.report import AskInterrupted
    from runq.producers.client.sync import Client, require_redis_url

    questions = list(args.question or [])
    if args.questions:
        questions += batch.read_questions(args.questions)
    schema = ask_schema.load(args.schema) if args.schema else None
    if not questions and not args.per_file:
        raise ask_corpus.CorpusError("no questions: give --questions FILE or -q TEXT")
    if args.out:
        ask_output.check_writable(args.out)
    console = Console(stderr=True)
    settings = get_settings()
    client = Client(require_redis_url(settings, "submit to"), settings)
    try:
        report = batch.run_ask(
            client,
            args.docs,
            questions,
            console=console,
            timeout=args.timeout,
            backend=args.backend,
            model=args.model,
            mode=args.mode,
            vector_store=args.vector_store,
            schema=schema,
            per_file=args.per_file,
            tier=args.tier,
            deadline=args.deadline,
        )
    except (AskInterrupted, KeyboardInterrupt) as exc:
        pending = exc.report.pending if isinstance(exc, AskInterrupted) else None
        still = f"{pending} job(s) keep running in the workers" if pending else "jobs keep running"
        console.print(
            f"\n[bold]interrupted[/]: {still}. Collect the answers (finished ones are "
            f"reused) with the same command:\n  {escape(_resume_hint(sys.argv[1:]))}"
        )
        return EXIT_INTERRUPTED
    data = ask_output.rows(report)
    shape = ask_output.layout(report)
    unwritten: ask_output.OutputError | None = None
    if args.out:
        try:
            kind = ask_output.write(args.out, data, shape)
            console.print(f"wrote {len(data)} {kind} row(s) to {escape(str(args.out))}")
        except ask_output.OutputError as err:  # the answers still print, then the error
            unwritten = err
    console.print(ask_output.answers_table(data, "runq ask", shape=shape))
    counters = report.counters()
    console.print(
        "runq ask: " + " ".join(f"{k}={v}" for k, v in counters.items()),
        soft_wrap=True,
        highlight=False,
    )
    for line in report.cost_lines():  # what the answers cost, and on which tier
        console.print(line, soft_wrap=True, highlight=False, markup=False)
    if unwritten is not None:
        raise unwritten
    if report.pending:
        what = "file(s)" if args.per_file else "question(s)"
        console.print(
            f"[yellow]{report.pending} {what} still running[/]; collect them "
            f"later with: {escape(_resume_hint(sys.argv[1:]))}"
        )
        return 1
    return 0 if report.failed == 0 else 1


def add_commands(sub: Any) -> None:
    """Add `ask` to the `runq` subcommands."""
    p = sub.add_parser(
        "ask",
        help="answer questions from documents (pdf, docx, txt, md, html, json) in batch",
        description="Upload the documents once, index them in a vector store, and run one "
        "job per question. Re-running the same command uploads nothing and reuses the "
        "finished answers; only missing or failed questions run again. With --schema the "
        "answers are JSON, written one column per field; with --per-file each document "
        "is asked alone, one row per file (extraction). Needs a running stack: "
        "REDIS_URL, or `runq up` in this folder.",
    )
    p.add_argument(
        "docs", nargs="*", metavar="DOCS", help="files or folders (recursive); optional with "
        "--vector-store"
    )  # fmt: skip
    src = p.add_mutually_exclusive_group()
    src.add_argument("--questions", metavar="FILE", help="one question a line")
    src.add_argument(
        "-q", "--question", action="append", metavar="TEXT", help="a question (repeat for several)"
    )
    p.add_argument(
        "--schema", metavar="FILE", help="a JSON schema of an object: every answer is JSON "
        "valid against it, written one column per top-level property"
    )  # fmt: skip
    p.add_argument(
        "--per-file", action="store_true", help="one job per document, searching that "
        "document alone: one row per file. Asks the questions given (joined), else "
        "extracts the --schema fields"
    )  # fmt: skip
    p.add_argument(
        "--out", metavar="FILE", help="write the results: .csv or .md by extension, else jsonl"
    )
    p.add_argument(
        "--vector-store", metavar="ID", help="search this existing vector store (DOCS given "
        "are added to it) instead of one built from DOCS"
    )  # fmt: skip
    p.add_argument("--backend", help="run protocol: responses, assistants or chat (default: "
                   "RUNQ_BACKEND, else responses)")  # fmt: skip
    p.add_argument("--model", help="the model to ask (default: RUNQ_MODEL, else gpt-5-mini)")
    p.add_argument("--mode", help="poll or stream (default: RUNQ_MODE, else poll)")
    p.add_argument("--tier", metavar="TIER", help="cost tier: auto, standard, flex, priority "
                   "or batch (half price: batch, flex; auto picks by --deadline; "
                   "docs/tiers.md)")  # fmt: skip
    p.add_argument("--deadline", type=option_types.duration, metavar="DURATION",
                   help="each question's deadline: 600, 15m, 24h "
                   "(default: RUNQ_JOB_DEADLINE)")  # fmt: skip
    p.add_argument(
        "--timeout",
        type=option_types.seconds,
        default=900.0,
        help="seconds to wait for the answers (jobs keep running after)",
    )
    p.set_defaults(func=cmd_ask)
