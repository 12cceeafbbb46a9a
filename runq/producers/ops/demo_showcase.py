"""What `runq demo` shows after the Q&A table: one extraction and one chart.

Both run on the demo's own stack, after the questions, so a newcomer sees the two
features that batch document Q&A is mostly used for besides answers:

- **structured extraction**: `runq ask --per-file --schema examples/schemas/product.json`
  over the same documents, one typed row per document;
- **the code interpreter**: a job with `examples/data/sales.csv` attached that asks for
  a chart; the PNG the run produced is written under the folder's `RUNQ_HOME`
  (`.runq/demo/` by default), and the demo prints where.

Each returns whether it worked, so the demo's exit status covers them too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from rich.console import Console

    from runq.producers.client.sync import Client

EXTRACTION_SCHEMA = Path("schemas") / "product.json"
CHART_DATA = Path("data") / "sales.csv"
CHART_PROMPT = "Plot monthly sales"
TIMEOUT = 90.0


def show_extraction(client: Client, examples: Path, console: Console) -> bool:
    """One row per sample document, one typed column per schema field."""
    from runq.producers.ask import batch
    from runq.producers.ask import output as ask_output
    from runq.producers.ask import schema as ask_schema

    schema = ask_schema.load(examples / EXTRACTION_SCHEMA)
    console.print(f"extracting {', '.join(schema.fields)} from each document ...")
    report = batch.run_ask(
        client,
        [str(examples / "docs")],
        [],
        console=console,
        timeout=TIMEOUT,
        schema=schema,
        per_file=True,
    )
    rows = ask_output.rows(report)
    table = Table(title=f"runq demo: {EXTRACTION_SCHEMA.as_posix()} per document")
    table.add_column("file")
    for field in schema.fields:
        table.add_column(field)
    for row in rows:
        cells = ["" if row.get(f) is None else str(row[f]) for f in schema.fields]
        table.add_row(Path(str(row["file"])).name, *cells)
    console.print(table)
    return all(r["status"] == "succeeded" for r in rows)


def draw_chart(client: Client, examples: Path, out_dir: Path, console: Console) -> bool:
    """A code-interpreter job over the sample sales table; its chart saved in `out_dir`."""
    data = examples / CHART_DATA
    console.print(f"asking the code interpreter to {CHART_PROMPT.lower()} from {data.name} ...")
    handle = client.submit(CHART_PROMPT, tools=["code_interpreter"], files=[str(data)])
    result = handle.result(timeout=TIMEOUT)
    if result.get("status") != "succeeded":
        error = (result.get("error") or {}).get("message", result.get("status"))
        console.print(f"[red]the chart job did not succeed[/]: {error}")
        return False
    images = [f for f in handle.files() if f.content_type == "image/png"]
    if not images:
        console.print("[red]the chart job produced no PNG[/]")
        return False
    for image in images:
        console.print(f"chart written to {image.save(out_dir)}")
    return True
