"""The corpus of `runq ask`: find documents, upload each once, build one vector store.

Uploads are de-duplicated by content (SHA-256): `keys.upload_cache(hash)` maps a
document's content to the file id it got, so a re-run uploads nothing. A cached id is
checked with one `GET /files/{id}` (cheap, no upload): a backend that forgot it (a
restarted sandbox, another base URL) gets the file again. The vector store is cached the
same way by the fingerprint of its sorted file ids (`keys.vector_store_cache`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runq.errors import RunqError
from runq.runs import keys
from runq.runs.replies import text

if TYPE_CHECKING:  # imported where used: a re-run that reuses every answer never needs it
    import openai
    import redis

    from runq.producers.client import KeyReads

# Extension -> a check of the first bytes (None: any text).
SUPPORTED: dict[str, bytes | None] = {
    ".pdf": b"%PDF",
    ".docx": b"PK",
    ".txt": None,
    ".md": None,
    ".markdown": None,
    ".html": None,
    ".htm": None,
    ".json": None,
}
TEXT_ENCODINGS = "utf-8, utf-16 or ascii"  # what file_search reads in a text file
MAX_BYTES = 512 * 1024 * 1024  # OpenAI's per-file limit
CACHE_TTL = 30 * 24 * 3600


class CorpusError(RunqError):
    """The documents could not be prepared (nothing to read, ingestion failed or timed out)."""


@dataclass(frozen=True)
class Document:
    path: Path
    sha256: str
    size: int

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class Corpus:
    """What `runq ask` searches: the documents, their file ids and the vector store."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    file_ids: dict[str, str] = field(default_factory=dict)  # sha256 -> file id
    uploaded: int = 0
    reused_uploads: int = 0
    vector_store_id: str | None = None
    vector_store_reused: bool = False
    named_store: str | None = None  # `--vector-store`: the user's store, not one runq builds
    stores_created: int = 0  # `--per-file`: one store per document (`ask.per_file`)
    stores_reused: int = 0

    @property
    def fingerprint(self) -> str:
        """Identifies the corpus by content, whatever its file ids: part of every job id.

        A store the user named is part of it by id: its other files are the user's.
        """
        parts = sorted(d.sha256 for d in self.documents)
        if self.named_store is not None:
            parts.append(f"store:{self.named_store}")
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def by_file_id(self) -> dict[str, Document]:
        ids = {sha: fid for sha, fid in self.file_ids.items()}
        return {ids[d.sha256]: d for d in self.documents if d.sha256 in ids}


def _walk(paths: Iterable[str]) -> Iterable[Path | tuple[str, str]]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            yield path
        else:
            yield (raw, "not found")


def _reason(path: Path, data: bytes) -> str | None:
    """Why this file cannot be used, or None when it can."""
    ext = path.suffix.lower()
    if ext not in SUPPORTED:
        kind = ext or "(no extension)"
        return f"unsupported type {kind}; supported: pdf, docx, txt, md, html, json"
    if not data:
        return "empty file"
    if len(data) > MAX_BYTES:
        return f"larger than {MAX_BYTES // (1024 * 1024)} MB"
    magic = SUPPORTED[ext]
    if magic is not None and not data.startswith(magic):
        return f"not a valid {ext[1:].upper()} file (unexpected header)"
    if magic is None:
        return _text_problem(data)
    return None


def _text_problem(data: bytes) -> str | None:
    """Why file_search could not read this text (it would fail ingestion), or None."""
    codec = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        data.decode(codec)
    except UnicodeDecodeError as err:
        return f"not {TEXT_ENCODINGS} text (undecodable byte at offset {err.start})"
    return None


def collect(paths: Iterable[str]) -> Corpus:
    """Find the documents under `paths` (recursing into folders), skipping with a reason."""
    corpus = Corpus()
    seen: dict[str, Path] = {}
    for item in _walk(paths):
        if isinstance(item, tuple):
            corpus.skipped.append(item)
            continue
        if item.name.startswith("."):
            continue
        try:
            data = item.read_bytes()
        except OSError as err:
            corpus.skipped.append((str(item), f"cannot read: {err.strerror or err}"))
            continue
        reason = _reason(item, data)
        if reason is None:
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:
                reason = f"same content as {seen[digest]}"
            else:
                seen[digest] = item
                corpus.documents.append(Document(item, digest, len(data)))
                continue
        corpus.skipped.append((str(item), reason))
    return corpus


def _cached_file(api: openai.OpenAI, r: redis.Redis, doc: Document) -> str | None:
    import openai

    cached = r.get(keys.upload_cache(doc.sha256))
    if cached is None:
        return None
    file_id = text(cached)
    try:
        api.files.retrieve(file_id)
    except openai.NotFoundError:
        r.delete(keys.upload_cache(doc.sha256))
        return None
    return file_id


def upload(
    corpus: Corpus,
    api: openai.OpenAI,
    r: redis.Redis,
    on_file: Callable[[Document, bool], None] | None = None,
) -> None:
    """Give every document a file id, uploading only content the backend does not have."""
    for doc in corpus.documents:
        file_id = _cached_file(api, r, doc)
        reused = file_id is not None
        if file_id is None:
            with doc.path.open("rb") as fh:
                created = api.files.create(file=(doc.name, fh), purpose="assistants")
            file_id = created.id
            r.set(keys.upload_cache(doc.sha256), file_id, ex=CACHE_TTL)
            corpus.uploaded += 1
        else:
            corpus.reused_uploads += 1
        corpus.file_ids[doc.sha256] = file_id
        if on_file is not None:
            on_file(doc, reused)


def store_fingerprint(file_ids: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(file_ids)).encode()).hexdigest()


def vector_store(corpus: Corpus, api: openai.OpenAI, r: redis.Redis) -> str:
    """The vector store holding exactly the corpus's files: reused if cached, else created."""
    ids = list(corpus.file_ids.values())
    if not ids:
        raise CorpusError("no supported documents to search; see the skipped files above")
    import openai

    key = keys.vector_store_cache(store_fingerprint(ids))
    cached = r.get(key)
    if cached is not None:
        try:
            store = api.vector_stores.retrieve(text(cached))
            if store.status != "expired":
                corpus.vector_store_id, corpus.vector_store_reused = store.id, True
                return store.id
        except openai.NotFoundError:
            pass
    store = api.vector_stores.create(name=f"runq-ask-{corpus.fingerprint[:12]}", file_ids=ids)
    r.set(key, store.id, ex=CACHE_TTL)
    corpus.vector_store_id = store.id
    return store.id


def named_store(corpus: Corpus, api: openai.OpenAI) -> str:
    """The vector store the user named: it must exist; the documents it lacks are added."""
    import openai

    store_id = corpus.named_store
    assert store_id is not None
    try:
        store = api.vector_stores.retrieve(store_id)
    except openai.NotFoundError:
        raise CorpusError(f"--vector-store {store_id!r} does not exist at the backend") from None
    if store.status == "expired":
        raise CorpusError(f"--vector-store {store_id!r} has expired; name another one")
    present = {f.id for f in api.vector_stores.files.list(store_id, limit=100)}
    for file_id in corpus.file_ids.values():
        if file_id not in present:
            api.vector_stores.files.create(vector_store_id=store_id, file_id=file_id)
    corpus.vector_store_id, corpus.vector_store_reused = store_id, True
    return store_id


def wait_ingested(
    api: openai.OpenAI,
    store_id: str,
    *,
    timeout: float = 600.0,
    on_progress: Callable[[int, int], None] | None = None,
    interval: float = 0.2,
) -> list[tuple[str, str]]:
    """Wait until no file is `in_progress`; return (file id, error) of the failed ones."""
    deadline = time.monotonic() + timeout
    while True:
        counts = api.vector_stores.retrieve(store_id).file_counts
        if on_progress is not None:
            on_progress(counts.completed + counts.failed + counts.cancelled, counts.total)
        if counts.in_progress == 0:
            break
        if time.monotonic() > deadline:
            raise CorpusError(
                f"vector store {store_id} still ingests {counts.in_progress} file(s) after "
                f"{timeout:.0f}s; run the same command again later to continue"
            )
        time.sleep(interval)
    if not counts.failed:
        return []
    failed = api.vector_stores.files.list(store_id, filter="failed")
    return [(f.id, _error_message(f.last_error)) for f in failed]


def remember_failures(r: redis.Redis, store_id: str, failures: list[tuple[str, str]]) -> None:
    """Keep what the store failed to ingest, so a re-run that asks the backend nothing
    still names the files its answers could not come from."""
    if failures:
        r.set(keys.vector_store_failures(store_id), json.dumps(failures), ex=CACHE_TTL)


def recall(corpus: Corpus, r: KeyReads) -> list[tuple[str, str]]:
    """Fill in the file ids and vector store recorded for these contents, from Redis only;
    return the (file id, error) of the files that store failed to ingest.

    For a re-run whose every answer is reused: its rows link citations back to the
    documents, and nothing is asked of the backend.
    """
    cached = r.mget([keys.upload_cache(doc.sha256) for doc in corpus.documents])
    for doc, file_id in zip(corpus.documents, cached, strict=True):
        if file_id is not None:
            corpus.file_ids[doc.sha256] = text(file_id)
            corpus.reused_uploads += 1
    if corpus.named_store is not None:
        store: Any = corpus.named_store
    elif corpus.file_ids:
        store = r.get(keys.vector_store_cache(store_fingerprint(corpus.file_ids.values())))
    else:
        store = None
    if store is None:
        return []
    corpus.vector_store_id, corpus.vector_store_reused = text(store), True
    failed = r.get(keys.vector_store_failures(corpus.vector_store_id))
    return [(str(f), str(e)) for f, e in json.loads(failed)] if failed else []


def _error_message(error: Any) -> str:
    return str(getattr(error, "message", None) or "ingestion failed")
