"""`producers.quick_reads` against a real redis-server: a password, an ACL user, a
database, a unix socket; and that every failure ends in redis-py's own answer or error."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from runq.producers.client._resp import Address, QuickReads, parse_url
from runq.worker.children import free_port, stop_process, wait_until
from runq.worker.launcher import find_redis_server

pytestmark = pytest.mark.integration

PASSWORD = "p@ss:w/rd"  # characters a URL must quote


class Server:
    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.socket_path = str(home / "redis.sock")
        args = [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--unixsocket", self.socket_path, "--save", "", "--appendonly", "no",
                "--dir", str(home), "--requirepass", PASSWORD]  # fmt: skip
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        wait_until(self._answers, "redis-server", 15.0, self.proc)
        self.client(0).acl_setuser("reader", enabled=True, passwords=["+reader-secret"],
                                   keys=["*"], commands=["+@all"])  # fmt: skip

    def _answers(self) -> bool:
        try:
            return bool(self.client(0).ping())
        except redis.exceptions.ConnectionError:
            return False

    def url(self, db: int = 0, password: str = PASSWORD) -> str:
        return f"redis://:{quote(password, safe='')}@127.0.0.1:{self.port}/{db}"

    def client(self, db: int) -> redis.Redis:
        return redis.Redis.from_url(self.url(db))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("quick-reads"))
    try:
        yield running
    finally:
        stop_process(running.proc)


def never_called() -> redis.Redis:
    raise AssertionError("QuickReads fell back to redis-py")


def test_get_and_mget_answer_what_redis_py_answers(server: Server) -> None:
    r = server.client(0)
    r.set("qr:text", "héllo")
    r.set("qr:binary", bytes(range(256)) + b"\r\n$-1\r\n")
    r.set("qr:empty", b"")
    reads = QuickReads(server.url(), never_called)
    names = ["qr:text", "qr:missing", "qr:binary", "qr:empty"]
    assert reads.mget(names) == r.mget(names)
    assert reads.get("qr:binary") == r.get("qr:binary")
    assert reads.get("qr:missing") is None
    assert reads.mget([]) == []
    big = [f"qr:many:{n}" for n in range(5000)]
    assert reads.mget(big) == [None] * 5000
    assert reads.quick  # every answer came over its own socket
    reads.close()


def test_a_database_and_an_acl_user(server: Server) -> None:
    server.client(3).set("qr:db", "three")
    url = f"redis://reader:reader-secret@127.0.0.1:{server.port}/3"
    reads = QuickReads(url, never_called)
    assert reads.get("qr:db") == b"three"
    assert QuickReads(url.removesuffix("/3") + "/0?db=3", never_called).get("qr:db") == b"three"


def test_a_unix_socket(server: Server) -> None:
    server.client(0).set("qr:unix", "over the socket")
    url = f"unix://:{quote(PASSWORD, safe='')}@{server.socket_path}"
    assert QuickReads(url, never_called).get("qr:unix") == b"over the socket"


def test_a_wrong_password_ends_in_redis_pys_error(server: Server) -> None:
    url = server.url(password="wrong")
    reads = QuickReads(url, lambda: redis.Redis.from_url(url))
    with pytest.raises(redis.exceptions.AuthenticationError):
        reads.get("qr:text")
    assert not reads.quick


def test_no_server_ends_in_redis_pys_connection_error() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    reads = QuickReads(url, lambda: redis.Redis.from_url(url))
    with pytest.raises(redis.exceptions.ConnectionError):
        reads.mget(["a", "b"])


def test_urls_it_does_not_speak_go_to_redis_py(server: Server) -> None:
    server.client(0).set("qr:text", "héllo")
    url = server.url() + "?socket_timeout=5"
    asked = []

    def fallback() -> redis.Redis:
        asked.append(url)
        return redis.Redis.from_url(url)

    reads = QuickReads(url, fallback)
    assert not reads.quick
    assert reads.get("qr:text") == "héllo".encode()
    assert asked


def test_a_reply_cut_short_is_asked_again_of_redis_py(server: Server) -> None:
    """A peer that closes mid-reply: the same read is answered by redis-py, once."""
    server.client(0).set("qr:text", "héllo")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def half_answer() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"*2\r\n$5\r\nhel")
        conn.close()

    thread = threading.Thread(target=half_answer, daemon=True)
    thread.start()
    reads = QuickReads(f"redis://127.0.0.1:{port}/0", lambda: server.client(0))
    assert reads.mget(["qr:text", "qr:missing"]) == ["héllo".encode(), None]
    assert not reads.quick
    thread.join(5)
    listener.close()


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0",
        "redis://localhost",
        "redis://:secret@10.0.0.5:7000/2",
        "redis://user:p%40ss%2Fword@host.example:6380/15",
        "redis://host/1?db=4",
        "unix:///run/redis.sock",
        "unix://:secret@/run/redis.sock?db=3",
    ],
)
def test_parse_url_agrees_with_redis_py(url: str) -> None:
    ours = parse_url(url)
    theirs = redis.connection.parse_url(url)
    assert ours is not None
    assert ours.db == int(theirs.get("db", 0))
    assert ours.password == theirs.get("password")
    assert ours.username == (theirs.get("username") or None)
    if ours.path is None:
        assert (ours.host, ours.port) == (theirs["host"], int(theirs.get("port", 6379)))
    else:
        assert ours.path == theirs["path"]


@pytest.mark.parametrize(
    "url",
    [
        "rediss://localhost:6379/0",  # TLS
        "redis://localhost:6379/0?socket_timeout=3",
        "redis://localhost:6379/zero",
        "redis://localhost:99999/0",
        "redis-sentinel://localhost:26379",
        "localhost:6379",
    ],
)
def test_parse_url_leaves_other_shapes_to_redis_py(url: str) -> None:
    assert parse_url(url) is None


def test_address_defaults() -> None:
    assert parse_url("redis://h") == Address(host="h")
