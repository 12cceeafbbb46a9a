"""Which code the sandbox model writes, and how containers keep and expire files.

The policy is documented in docs/sandbox.md ("Code interpreter"); these pin it without
running anything, except the last test, which runs a template for real.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from runq.sandbox.engine import code_runner, code_writer
from runq.sandbox.engine.containers import ContainerPool

SALES = (Path(__file__).resolve().parents[2] / "examples" / "data" / "sales.csv").read_bytes()
FILES = {"sales.csv": SALES}


def plan(question: str, files: dict[str, bytes] | None = None, **kw: object) -> code_writer.Plan:
    (only,) = code_writer.plan_code(question, FILES if files is None else files, **kw)  # type: ignore[arg-type]
    return only


def test_a_fenced_block_runs_as_written_before_any_template() -> None:
    chosen = plan("Plot this instead:\n```python\nprint('mine')\n```")
    assert (chosen.kind, chosen.code) == ("code", "print('mine')\n")
    assert plan("```\nx = 1\n```").code == "x = 1\n"


def test_the_script_channel_gives_the_code() -> None:
    script = json.dumps([[{"name": "code_interpreter", "arguments": {"code": "print(2)"}}]])
    chosen = plan("anything", metadata={"sandbox_script": script})
    assert (chosen.kind, chosen.code) == ("script", "print(2)")
    line = f"sandbox_script: {script}"
    assert plan("anything", instructions=line).code == "print(2)"


def test_plot_monthly_sales_sums_revenue_per_month_as_a_line() -> None:
    chosen = plan("Plot monthly sales")
    assert (chosen.kind, chosen.subject, chosen.source) == ("plot", "revenue by month", "sales.csv")
    assert "fig.savefig('revenue_by_month.png', dpi=100)" in chosen.code
    assert 'ax.plot(labels, values, marker="o")' in chosen.code
    bar = plan("Draw a bar chart of units by region")
    assert bar.subject == "units by region" and "ax.bar(labels, values)" in bar.code


def test_mean_and_sum_follow_the_named_columns() -> None:
    mean = plan("What is the average revenue by region?")
    assert (mean.kind, mean.subject) == ("mean", "mean of revenue by region")
    total = plan("total units per month")
    assert (total.kind, total.subject) == ("sum", "sum of units by month")
    overall = plan("What is the sum of units?")
    assert overall.subject == "sum of units"


def test_anything_else_over_a_csv_describes_it() -> None:
    assert plan("Tell me about this file").kind == "describe"
    assert plan("plot it", {"names.csv": b"name,city\nAda,London\n"}).kind == "describe"


def test_no_code_without_a_fence_a_script_or_a_csv() -> None:
    assert code_writer.plan_code("Plot monthly sales", {}) == []
    assert code_writer.plan_code("Plot monthly sales", {"notes.txt": b"hello"}) == []


def test_a_template_runs_and_its_answer_states_the_results(tmp_path: Path) -> None:
    (tmp_path / "sales.csv").write_bytes(SALES)
    chosen = plan("What is the average revenue by region?")
    mpl = str(tmp_path / ".mpl")
    done = code_runner.execute(chosen.code, tmp_path, mpl, code_runner.CodeLimits())
    assert done.ok, done.logs
    answer = code_writer.answer_text([chosen], [done])
    assert answer.startswith("I computed the mean of revenue by region in sales.csv.")
    assert "mean of revenue for South: 4,257.92 (12 rows)" in answer


def test_container_files_keep_safe_names_and_replace_same_named_files() -> None:
    pool = ContainerPool(idle_minutes=20)
    try:
        rec = pool.create("c")
        first = pool.add_file(rec, "../../etc/evil.csv", b"a")
        assert first.name == "evil.csv" and (rec.workdir / "evil.csv").read_bytes() == b"a"
        assert pool.add_file(rec, ".hidden", b"b").name == "hidden"
        second = pool.add_file(rec, "evil.csv", b"bb")
        assert list(rec.files) == [rec.by_name("hidden").id, second.id]  # type: ignore[union-attr]
        assert pool.read(rec, second) == b"bb"
        pool.delete_file(rec, second.id)
        assert not (rec.workdir / "evil.csv").exists()
    finally:
        pool.reset()


def test_a_container_expires_after_its_idle_minutes() -> None:
    pool = ContainerPool(idle_minutes=20)
    try:
        busy, idle = pool.create("busy"), pool.create("idle", idle_minutes=1)
        pool.add_file(idle, "a.csv", b"x")
        pool.sweep(now=time.time() + 61)
        assert idle.expired and idle.files == {} and not idle.workdir.exists()
        assert idle.to_json()["status"] == "expired"
        assert not busy.expired and busy.to_json()["status"] == "running"
        pool.sweep(now=time.time() + 20 * 60 + 1)
        assert busy.expired
    finally:
        pool.reset()
    assert not pool.containers
