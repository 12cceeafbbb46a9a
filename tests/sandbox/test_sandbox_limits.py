"""Limits on what a client's files may cost: upload size, and parsing off the request path.

A 214 KB DOCX whose ``document.xml`` inflated to hundreds of MB took a gigabyte and held
vector store creation for two minutes: parsing ran inside the request and uploads had
no size limit. Now an upload over ``max_upload_bytes`` is a 413 before its body is read,
and a file is parsed in a child process under an unpacked-size, memory and time limit,
while the request that added it has long been answered.
"""

from __future__ import annotations

import io
import struct
import time
import zipfile
from collections.abc import Iterator

import docx
import httpx
import openai
import pytest
from sandbox_helpers import wait_until

from runq.sandbox.engine.config import SandboxConfig
from runq.sandbox.engine.ingestion import IngestLimits, parse_isolated
from runq.sandbox.server.serve import SandboxServer
from tests.conftest import wait_for

LIMIT = 64 * 1024
XML_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w='
    b'"http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
)


def bomb(megabytes: int = 300, lie: bool = False) -> bytes:
    """A real DOCX whose ``word/document.xml`` inflates to ``megabytes`` MB of paragraphs.

    About 1 MB on disk. ``lie`` rewrites the member's declared size to 1,000 bytes, as a
    crafted bomb would, so only the real inflated size gives it away.
    """
    blank = io.BytesIO()
    docx.Document().save(blank)
    source = zipfile.ZipFile(io.BytesIO(blank.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for info in source.infolist():
            if info.filename != "word/document.xml":
                archive.writestr(info, source.read(info))
                continue
            with archive.open("word/document.xml", "w") as member:
                member.write(XML_HEAD)
                paragraph = b"<w:p><w:r><w:t>boom</w:t></w:r></w:p>"
                block = paragraph * ((1 << 20) // len(paragraph))
                for _ in range(megabytes):
                    member.write(block)
                member.write(b"</w:body></w:document>")
    data = bytearray(out.getvalue())
    if lie:
        _declare_size(data, b"word/document.xml", 1000)
    return bytes(data)


def _declare_size(data: bytearray, name: bytes, size: int) -> None:
    """Rewrite a member's uncompressed size in its local and central headers."""
    central = data.find(b"PK\x01\x02")
    while central != -1:
        length = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46 : central + 46 + length] == name:
            struct.pack_into("<I", data, central + 24, size)
            local = struct.unpack_from("<I", data, central + 42)[0]
            struct.pack_into("<I", data, local + 22, size)
            return
        central = data.find(b"PK\x01\x02", central + 4)
    raise AssertionError(f"{name!r} not in the archive")


@pytest.fixture(scope="module")
def small_uploads() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(port=0, latency_ms=0, max_upload_bytes=LIMIT)) as srv:
        yield srv


def _client(srv: SandboxServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=20)


def test_an_upload_over_the_limit_is_a_413_before_its_body_is_read(
    small_uploads: SandboxServer,
) -> None:
    """OpenAI answers a body over its content limit with 413 and this error (observed live,
    reported in the StanGirard/speechdigest GitHub project, issue 1): type
    ``server_error``, message ``Maximum content size limit (N) exceeded (M bytes read)``."""
    with _client(small_uploads) as client:
        ok = client.files.create(file=("ok.txt", b"x" * LIMIT), purpose="assistants")
        assert ok.bytes == LIMIT
        with pytest.raises(openai.APIStatusError) as refused:
            client.files.create(file=("big.txt", b"x" * (4 * LIMIT)), purpose="assistants")
        assert refused.value.status_code == 413
        error = refused.value.body
        assert isinstance(error, dict)
        assert error["type"] == "server_error" and error["code"] is None
        assert error["message"].startswith(f"Maximum content size limit ({LIMIT}) exceeded")
        assert "Content-Length" in error["message"]  # refused on the header, nothing read
        # a file just over the limit, in a body within the form's allowance
        with pytest.raises(openai.APIStatusError) as over:
            client.files.create(file=("edge.txt", b"x" * (LIMIT + 1)), purpose="assistants")
        assert over.value.status_code == 413
        assert [f.id for f in client.files.list()] == [ok.id]


def test_a_chunked_upload_is_counted_while_it_streams(small_uploads: SandboxServer) -> None:
    """No Content-Length to trust: the parser stops at the first piece past the limit."""
    boundary = "sandboxboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    sent = [0]

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(64):  # 4 MiB in all, far past the limit
            sent[0] += 1
            yield b"y" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    response = httpx.post(
        small_uploads.base_url + "/files",
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=20,
    )
    assert response.status_code == 413
    message = response.json()["error"]["message"]
    assert message.startswith(f"Maximum content size limit ({LIMIT}) exceeded (")
    assert message.endswith("bytes read)")
    read = int(message.rsplit("(", 1)[1].split()[0])
    # It stopped early: past the limit, but far short of the 4 MiB the client offered
    # (how far past depends on how many chunks the server had buffered by then).
    assert LIMIT < read < 64 * 65536 // 4


@pytest.mark.parametrize("lie", [False, True], ids=["declared", "lying-header"])
def test_a_docx_bomb_fails_as_invalid_file(client: openai.OpenAI, lie: bool) -> None:
    """The default limits: the declared sizes give it away, or the inflated bytes do."""
    upload = client.files.create(file=("bomb.docx", bomb(lie=lie)), purpose="assistants")
    started = time.monotonic()
    store = client.vector_stores.create(name="bomb", file_ids=[upload.id])
    assert time.monotonic() - started < 2.0
    done = wait_until(
        lambda: client.vector_stores.files.retrieve(upload.id, vector_store_id=store.id),
        lambda f: f.status != "in_progress",
    )
    assert done.status == "failed" and done.last_error is not None
    assert done.last_error.code == "invalid_file"
    expected = "over the sandbox's limit" if not lie else "word/document.xml"
    assert expected in done.last_error.message
    assert client.vector_stores.retrieve(store.id).file_counts.failed == 1


@pytest.fixture(scope="module")
def no_unpacked_check() -> Iterator[SandboxServer]:
    """A bomb that escapes the unpacked-size check meets the memory and time limits."""
    config = SandboxConfig(
        port=0,
        latency_ms=0,
        ingest_max_unpacked_bytes=0,
        ingest_memory_mb=1024,
        ingest_timeout_seconds=20,
    )
    with SandboxServer(config) as srv:
        yield srv


def test_the_server_answers_while_a_bomb_is_parsed(no_unpacked_check: SandboxServer) -> None:
    with _client(no_unpacked_check) as client:
        upload = client.files.create(file=("bomb.docx", bomb()), purpose="assistants")
        store = client.vector_stores.create(name="bomb")
        started = time.monotonic()
        added = client.vector_stores.files.create(vector_store_id=store.id, file_id=upload.id)
        assert added.status == "in_progress"
        assert time.monotonic() - started < 1.0
        answered_while_parsing = 0
        while answered_while_parsing < 3:
            asked = time.monotonic()
            assert client.models.list().data
            assert time.monotonic() - asked < 0.5
            state = client.vector_stores.files.retrieve(upload.id, vector_store_id=store.id)
            if state.status != "in_progress":
                break
            answered_while_parsing += 1
        assert answered_while_parsing == 3, "the bomb was parsed too fast to prove anything"
        done = wait_for(
            lambda: (
                f
                if (
                    f := client.vector_stores.files.retrieve(upload.id, vector_store_id=store.id)
                ).status
                != "in_progress"
                else None
            ),
            what="the bomb's ingestion to end",
        )
        assert done.status == "failed" and done.last_error is not None
        assert done.last_error.code in ("invalid_file", "server_error"), done.last_error


def test_parsing_past_its_time_limit_is_stopped() -> None:
    parsed = parse_isolated("notes.txt", b"hello.", (800, 400), IngestLimits(timeout_seconds=0.001))
    assert parsed.error_code == "server_error"
    assert parsed.error is not None and "took longer than" in parsed.error


def test_a_text_file_is_parsed_and_chunked_in_the_child() -> None:
    parsed = parse_isolated("notes.txt", b"The vault code is 4417.", (800, 400), IngestLimits())
    assert (parsed.error, parsed.text, parsed.chunks) == (
        None,
        "The vault code is 4417.",
        ["The vault code is 4417."],
    )
