"""`runq ask` without servers: which files are used, job ids, result rows and files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from runq.config.settings import load_settings
from runq.errors import InvalidJobError
from runq.producers import cli
from runq.producers.ask import batch, plan
from runq.producers.ask import output as ask_output
from runq.producers.ask.corpus import Corpus, Document, collect
from runq.producers.ask.report import AskReport
from runq.producers.client.sync import Client


def make_tree(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("Alpha facts.")
    (root / "sub" / "b.md").write_text("# Beta\nMore facts.")
    (root / "sub" / "copy.txt").write_text("Alpha facts.")
    (root / "logo.png").write_bytes(b"\x89PNG....")
    (root / "empty.json").write_text("")
    (root / "fake.pdf").write_text("not a pdf")
    (root / ".hidden.txt").write_text("ignored")


def test_collect_recurses_and_says_why_files_are_skipped(tmp_path: Path) -> None:
    make_tree(tmp_path)
    corpus = collect([str(tmp_path), str(tmp_path / "missing.docx")])
    assert sorted(d.name for d in corpus.documents) == ["a.txt", "b.md"]
    reasons = {Path(p).name: r for p, r in corpus.skipped}
    assert reasons["logo.png"].startswith("unsupported type .png")
    assert reasons["empty.json"] == "empty file"
    assert "not a valid PDF" in reasons["fake.pdf"]
    assert reasons["copy.txt"].startswith("same content as")
    assert reasons["missing.docx"] == "not found"
    assert ".hidden.txt" not in reasons


def test_text_files_must_be_in_an_encoding_file_search_reads(tmp_path: Path) -> None:
    """The API fails ingestion of other text; skipping up front says why, before uploading."""
    (tmp_path / "plain.txt").write_text("ascii only")
    (tmp_path / "bom.md").write_bytes("# Café".encode("utf-8-sig"))
    (tmp_path / "wide.txt").write_bytes("Größe".encode("utf-16"))
    (tmp_path / "latin.html").write_bytes("<p>Résumé</p>".encode("latin-1"))
    (tmp_path / "noise.json").write_bytes(bytes(range(128, 256)))
    corpus = collect([str(tmp_path)])
    assert sorted(d.name for d in corpus.documents) == ["bom.md", "plain.txt", "wide.txt"]
    reasons = {Path(p).name: r for p, r in corpus.skipped}
    assert reasons == {
        "latin.html": "not utf-8, utf-16 or ascii text (undecodable byte at offset 4)",
        "noise.json": "not utf-8, utf-16 or ascii text (undecodable byte at offset 0)",
    }


def test_a_file_that_cannot_be_read_is_skipped_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ok.txt").write_text("readable")
    (tmp_path / "locked.txt").write_text("not for us")
    read_bytes = Path.read_bytes

    def guarded(path: Path) -> bytes:
        if path.name == "locked.txt":  # what a file of another user gives a non-root user
            raise PermissionError(13, "Permission denied")
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", guarded)
    corpus = collect([str(tmp_path)])
    assert [d.name for d in corpus.documents] == ["ok.txt"]
    assert [(Path(p).name, r) for p, r in corpus.skipped] == [
        ("locked.txt", "cannot read: Permission denied")
    ]


def test_corpus_fingerprint_depends_on_content_only(tmp_path: Path) -> None:
    one = Corpus(documents=[Document(tmp_path / "x", "h1", 1), Document(tmp_path / "y", "h2", 1)])
    two = Corpus(documents=[Document(tmp_path / "z", "h2", 1), Document(tmp_path / "w", "h1", 1)])
    assert one.fingerprint == two.fingerprint
    assert Corpus(documents=[Document(tmp_path / "x", "h3", 1)]).fingerprint != one.fingerprint
    # A store the user names is part of what the answers come from.
    named = Corpus(documents=list(one.documents), named_store="vs_1")
    assert named.fingerprint != one.fingerprint
    other = Corpus(documents=list(one.documents), named_store="vs_2")
    assert named.fingerprint != other.fingerprint


def test_job_ids_are_deterministic_per_corpus_question_and_options() -> None:
    opts = {"backend": "responses", "model": "m", "mode": "poll", "instructions": "i"}
    d = plan.question_digest("corpus", "Q?", opts)
    assert d == plan.question_digest("corpus", "Q?", dict(opts, deadline=5))
    assert d != plan.question_digest("corpus2", "Q?", opts)
    assert d != plan.question_digest("corpus", "Q2?", opts)
    assert d != plan.question_digest("corpus", "Q?", dict(opts, model="other"))
    assert plan.attempt_id(d, 0) == f"ask_{d}" and plan.attempt_id(d, 2) == f"ask_{d}-r2"


def test_read_questions_skips_blank_lines_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "q.txt"
    path.write_text("# header\nFirst?\n\n  Second?  \n")
    assert batch.read_questions(path) == ["First?", "Second?"]


def report(tmp_path: Path) -> AskReport:
    doc = Document(tmp_path / "docs" / "faq.html", "h", 1)
    corpus = Corpus(documents=[doc], file_ids={"h": "file_1"}, vector_store_id="vs_1")
    text = "The radius is 400 metres. It can change."
    result = {
        "status": "succeeded", "output_text": text, "source": "responses:m",
        "citations": [{"file_id": "file_1", "filename": "faq.html", "index": 25, "quote": None}],
        "usage": {"total_tokens": 42}, "timings": {"total_s": 0.5}, "fallback_used": False,
    }  # fmt: skip
    missing = {"status": "succeeded", "output_text": "I could not find an answer.",
               "citations": [], "usage": {}, "timings": {}}  # fmt: skip
    r = AskReport(corpus=corpus, questions=["Radius?", "CEO?", "Later?"],
                      job_ids=["j1", "j2", "j3"])  # fmt: skip
    r.results = {"j1": result, "j2": missing}
    return r


def test_an_unreadable_questions_file_is_a_clear_error_before_anything_runs(
    tmp_path: Path, capsys
) -> None:
    binary = tmp_path / "questions.bin"
    binary.write_bytes(b"\xff\xfe\x00what?")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    for path, says in [
        (tmp_path / "missing.txt", "does not exist"),
        (binary, "is not UTF-8 text"),
        (folder, "cannot read questions file"),
    ]:
        # No Redis is configured here: the questions are read, and refused, first.
        assert cli.main(["ask", str(tmp_path), "--questions", str(path)]) == cli.EXIT_USAGE
        err = capsys.readouterr().err
        assert err.startswith("runq: error: ") and str(path) in err and says in err
        assert "Traceback" not in err


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [("model", "", "model"), ("backend", "nope", "backend"), ("mode", "fast", "mode")],
)
def test_bad_options_are_refused_before_any_document_is_read(
    tmp_path: Path, option: str, value: str, named: str
) -> None:
    (tmp_path / "faq.md").write_text("# FAQ\nThe warranty lasts two years.\n")
    # Nothing listens on this port: touching Redis would raise ConnectionError instead.
    client = Client("redis://127.0.0.1:1/0", load_settings())
    console = Console(file=io.StringIO())
    with pytest.raises(InvalidJobError, match=named):
        batch.run_ask(client, [str(tmp_path)], ["How long?"], console=console, **{option: value})
    assert console.file.getvalue() == ""  # not even the documents were listed


def test_a_results_path_that_cannot_be_written_is_refused_up_front(tmp_path: Path, capsys) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(ask_output.OutputError, match="is a folder"):
        ask_output.check_writable(tmp_path)
    with pytest.raises(ask_output.OutputError, match="is a file, not a folder"):
        ask_output.check_writable(a_file / "deeper" / "results.jsonl")
    ask_output.check_writable(tmp_path / "new" / "folders" / "results.csv")  # write makes them
    assert not (tmp_path / "new").exists()  # checking created nothing
    # The command checks before it needs Redis (none is configured here) or any backend.
    assert cli.main(["ask", str(tmp_path), "-q", "How long?", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_a_failed_write_says_the_answers_are_kept(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(ask_output.OutputError, match="answers are kept") as caught:
        ask_output.write(a_file / "results.jsonl", [])
    assert str(a_file / "results.jsonl") in str(caught.value)


def test_rows_carry_citations_with_quotes_and_links(tmp_path: Path) -> None:
    rows = ask_output.rows(report(tmp_path))
    first, second, third = rows
    assert first["citations"] == [{"file": "faq.html", "quote": "The radius is 400 metres."}]
    assert first["answered"] and first["source_link"].endswith("docs/faq.html")
    assert (first["tokens"], first["latency_s"], first["source"]) == (42, 0.5, "responses:m")
    assert not second["answered"] and second["citations"] == []
    assert third["status"] == "pending"


def test_output_formats_follow_the_extension(tmp_path: Path) -> None:
    rows = ask_output.rows(report(tmp_path))
    assert ask_output.write(tmp_path / "r.jsonl", rows) == "jsonl"
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["question"] == "Radius?" and len(lines) == 3
    assert ask_output.write(tmp_path / "r.csv", rows) == "csv"
    with (tmp_path / "r.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert table[0]["cited_files"] == "faq.html" and "400 metres" in table[0]["quotes"]
    assert ask_output.write(tmp_path / "r.md", rows) == "md"
    md = (tmp_path / "r.md").read_text()
    assert md.startswith("| question |") and "[faq.html](" in md


def _rendered(renderable: object) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=300, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_the_answers_table_prints_brackets_as_written(tmp_path: Path) -> None:
    r = report(tmp_path)
    r.questions[0] = "What does [Menu] do?"
    r.results["j1"]["output_text"] = "Press [bold]OK[/bold]; the ratio [/] of a to b stays."
    out = _rendered(ask_output.answers_table(ask_output.rows(r), "runq ask"))
    assert "What does [Menu] do?" in out
    assert "Press [bold]OK[/bold]; the ratio [/] of a to b stays." in out


def test_skipped_files_with_brackets_in_their_names_are_listed(tmp_path: Path) -> None:
    from rich.console import Console

    (tmp_path / "notes[v2].xyz").write_text("?")
    (tmp_path / "faq.md").write_text("# FAQ\n")
    console = Console(file=io.StringIO(), width=300, color_system=None)
    batch.collect([str(tmp_path)], console)
    assert "notes[v2].xyz" in console.file.getvalue()  # type: ignore[attr-defined]
