"""`runq ask --per-file`: one job per document, each searching that document alone.

"Extract these fields from every file": the rows are the documents, and a job must
not answer for one document from another's text. Each job therefore gets a vector
store that holds its document only, searched with file_search.

Why a store per document rather than the file attached to the request: file_search
ingests every type `runq ask` reads (pdf, docx, txt, md, html, json) on every backend
that searches (Responses `tools`, Assistants `tool_resources`), in the sandbox as at
OpenAI. An attached file (`input_file`) is meant for PDFs (Chat Completions' file part
takes PDFs only), the sandbox reads no attached file, and a job carries no file input
to attach. The one-document store is built, cached and reused exactly like the
corpus's (`corpus.vector_store`, keyed by its file ids): a re-run builds nothing, and
one whose answers all exist asks the backend nothing (`recall` reads Redis only).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from runq.producers.ask import corpus as ask_corpus
from runq.producers.ask.corpus import Corpus, Document
from runq.runs import keys
from runq.runs.replies import text

if TYPE_CHECKING:
    import openai
    import redis

    from runq.producers.client import KeyReads


def alone(corpus: Corpus, doc: Document) -> Corpus:
    """A corpus of `doc` only, with its file id: what its own store is built from."""
    return Corpus(documents=[doc], file_ids={doc.sha256: corpus.file_ids[doc.sha256]})


def stores(
    corpus: Corpus,
    docs: list[Document],
    api: openai.OpenAI,
    r: redis.Redis,
    *,
    ingest_timeout: float = 600.0,
    on_store: Callable[[Document], None] | None = None,
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Each document's own store (sha256 -> store id), created or reused, ingested.

    Returns the stores and the (file id, error) of the files a store failed to ingest;
    those are remembered per store, so a re-run that asks nothing can still name them.
    """
    found: dict[str, str] = {}
    failures: list[tuple[str, str]] = []
    for doc in docs:
        one = alone(corpus, doc)
        store_id = ask_corpus.vector_store(one, api, r)
        if one.vector_store_reused:
            corpus.stores_reused += 1
        else:
            corpus.stores_created += 1
        failed = ask_corpus.wait_ingested(api, store_id, timeout=ingest_timeout)
        ask_corpus.remember_failures(r, store_id, failed)
        failures += failed
        found[doc.sha256] = store_id
        if on_store is not None:
            on_store(doc)
    return found, failures


def recall(corpus: Corpus, r: KeyReads) -> list[tuple[str, str]]:
    """From Redis only: the documents' file ids, and what their stores failed to ingest.

    For a re-run whose every answer exists: nothing is asked of the backend.
    """
    cached = r.mget([keys.upload_cache(doc.sha256) for doc in corpus.documents])
    for doc, file_id in zip(corpus.documents, cached, strict=True):
        if file_id is not None:
            corpus.file_ids[doc.sha256] = text(file_id)
            corpus.reused_uploads += 1
    ids = list(corpus.file_ids.values())
    if not ids:
        return []
    store_keys = [keys.vector_store_cache(ask_corpus.store_fingerprint([fid])) for fid in ids]
    store_ids = [text(s) for s in r.mget(store_keys) if s is not None]
    corpus.stores_reused += len(store_ids)
    if not store_ids:
        return []
    failed = r.mget([keys.vector_store_failures(s) for s in store_ids])
    return [(str(f), str(e)) for raw in failed if raw for f, e in json.loads(raw)]
