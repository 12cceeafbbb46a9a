"""The child process that parses one uploaded file: ``python -m ...parse_worker``.

Parsing a document is the one thing the sandbox does whose cost the client controls:
a 200 KB DOCX can inflate to a gigabyte, a PDF can nest streams until the parser
spins. So it never runs in the server's process. The parent
(:mod:`.ingestion`) starts this module with the job as one JSON argument and the
file's bytes on stdin; it reads its answer, one JSON object, on stdout:
``{"text": ..., "chunks": [...]}`` or ``{"error": {"code": ..., "message": ...}}``.

Before it imports a parser it caps its own address space (``RLIMIT_AS``) and CPU time
(``RLIMIT_CPU``), so a file that escapes the unpacked-size check still cannot take the
machine's memory or a core for ever; the parent's wall-clock timeout kills it in any
case. A ``MemoryError`` is reported as such; a crash is noticed by the parent.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any


def _limit(memory_bytes: int, cpu_seconds: float) -> None:
    """Cap this process's memory and CPU time (where the platform allows it)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX: the parent's timeout still holds
        return
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    if cpu_seconds > 0:
        seconds = math.ceil(cpu_seconds)
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))


def parse(job: dict[str, Any], data: bytes) -> dict[str, Any]:
    """Extract and chunk ``data``: the answer this process prints."""
    from runq.sandbox.engine.documents import UnsupportedFile, extract_text
    from runq.sandbox.engine.tokens import chunk_text

    try:
        text = extract_text(job["filename"], data, job["max_unpacked_bytes"])
    except UnsupportedFile as exc:
        return {"error": {"code": exc.code, "message": str(exc)}}
    chunks = chunk_text(text, job["max_chunk_size_tokens"], job["chunk_overlap_tokens"])
    return {"text": text, "chunks": chunks}


def main() -> int:
    job = json.loads(sys.argv[1])
    _limit(job.get("memory_bytes", 0), job.get("cpu_seconds", 0))
    data = sys.stdin.buffer.read()
    try:
        answer = parse(job, data)
    except MemoryError:
        answer = {
            "error": {
                "code": "server_error",
                "message": "Parsing the file ran out of memory (the sandbox's parser is "
                f"limited to {job.get('memory_bytes', 0)} bytes).",
            }
        }
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
