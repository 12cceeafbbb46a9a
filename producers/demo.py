"""`runq demo`: start the embedded stack, answer the sample questions, print them, stop."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from config.settings import get_settings, load_settings
from worker.launcher import Stack

SAMPLE_QUESTIONS = Path(__file__).resolve().parent.parent / "examples" / "questions.txt"


def _questions(path: str | None) -> list[str]:
    source = Path(path) if path else SAMPLE_QUESTIONS
    lines = [line.strip() for line in source.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def run_demo(*, questions_file: str | None = None, latency_ms: int = 300) -> int:
    from producers.api import Client

    console = Console()
    questions = _questions(questions_file)
    settings = get_settings()
    home = Path(tempfile.mkdtemp(prefix="demo-", dir=_ensure(settings.home)))
    started = time.monotonic()
    console.print(f"[bold]runq demo[/]: starting Redis, the sandbox and a worker under {home}")
    with Stack(home=home, sandbox_latency_ms=latency_ms, workers=1, concurrency=2,
               worker_log=home / "worker.log") as stack:  # fmt: skip
        assert stack.redis_url is not None
        client = Client(stack.redis_url, load_settings(redis_url=stack.redis_url))
        handles = [client.submit(q) for q in questions]
        console.print(f"submitted {len(handles)} jobs; waiting for answers...")
        results = [h.result(timeout=90) for h in handles]
    table = Table(title="runq demo: answers", show_lines=True)
    table.add_column("question", ratio=2)
    table.add_column("answer", ratio=3)
    table.add_column("status")
    table.add_column("tokens", justify="right")
    for question, result in zip(questions, results, strict=True):
        table.add_row(question, result.get("output_text") or str(result.get("error")),
                      result["status"], str(result["usage"].get("total_tokens", "")))  # fmt: skip
    console.print(table)
    ok = sum(r["status"] == "succeeded" for r in results)
    console.print(f"{ok}/{len(results)} succeeded in {time.monotonic() - started:.1f}s; "
                  "all services stopped.")  # fmt: skip
    return 0 if ok == len(results) else 1


def _ensure(path: Path) -> str:
    os.makedirs(path, exist_ok=True)
    return str(path)
