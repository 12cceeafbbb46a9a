"""GET, MGET and ZSCORE over a socket of our own, so a short command need not import redis-py.

Why: a re-run of `runq ask` whose answers all exist reads a few keys from Redis and
prints them. Importing redis-py costs 70-100 ms (it imports asyncio, and OpenTelemetry
when that is installed), more than half of such a re-run. This module speaks RESP2,
read-only, over one socket for the URL shapes runq itself uses: `redis://` and
`unix://`, with a user, a password and a database.

It is a fast path, never a second client to debug: `QuickReads` hands every other URL
(TLS, query options) to redis-py, and from its first failure on (refused connection,
wrong password, odd reply) asks redis-py again, so errors read exactly as they do
everywhere else in runq.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0


class KeyReads(Protocol):
    """What a read-only caller needs; `redis.Redis` fits it too."""

    def get(self, name: str) -> Any: ...

    def mget(self, keys: Sequence[str]) -> Any: ...


class ScoreReads(KeyReads, Protocol):
    """`KeyReads` and the score of a sorted set's member (when a step is due)."""

    def zscore(self, name: str, value: str) -> Any: ...


class ProtocolError(Exception):
    """The server's reply was cut short or is not RESP2."""


class ReplyError(Exception):
    """Redis answered `-ERR ...` (a wrong password, an unknown database)."""


@dataclass(frozen=True)
class Address:
    """Where and how to connect, parsed from a Redis URL."""

    host: str | None = None
    port: int = 6379
    path: str | None = None  # a unix socket
    username: str | None = None
    password: str | None = None
    db: int = 0


def parse_url(url: str) -> Address | None:
    """The address in `url`, or None for a shape this module leaves to redis-py."""
    try:
        parts = urlsplit(url)
        port = parts.port or 6379
    except ValueError:
        return None
    query = parse_qs(parts.query)
    if set(query) - {"db"} or any(len(v) != 1 for v in query.values()):
        return None
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    try:
        if parts.scheme == "redis" and parts.hostname:
            path_db = parts.path.lstrip("/")
            db = int(query["db"][0]) if "db" in query else int(path_db or 0)
            return Address(parts.hostname, port, None, username, password, db)
        if parts.scheme == "unix" and parts.path:
            db = int(query.get("db", ["0"])[0])
            return Address(None, 6379, unquote(parts.path), username, password, db)
    except ValueError:
        return None
    return None


def _encode(args: Sequence[str]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class RespConnection:
    """One socket to Redis: authenticated, on its database, one command at a time."""

    def __init__(self, address: Address, *, timeout: float = READ_TIMEOUT) -> None:
        if address.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(CONNECT_TIMEOUT)
            try:
                sock.connect(address.path)
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_connection((address.host, address.port), CONNECT_TIMEOUT)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        self._sock = sock
        self._file = sock.makefile("rb")
        try:
            if address.password is not None:
                credentials = [address.username] if address.username else []
                self.call("AUTH", *credentials, address.password)
            if address.db:
                self.call("SELECT", str(address.db))
        except BaseException:
            self.close()
            raise

    def call(self, *args: str) -> Any:
        """Send one command and return its reply: bytes, None, int or a list of them."""
        self._sock.sendall(_encode(args))
        return self._reply()

    def _reply(self) -> Any:
        line = self._file.readline()
        if not line.endswith(b"\r\n"):
            raise ProtocolError("the connection closed mid-reply")
        kind, body = line[:1], line[1:-2]
        if kind == b"-":
            raise ReplyError(body.decode("utf-8", "replace"))
        if kind == b"+":
            return body
        try:
            size = int(body)
        except ValueError:
            raise ProtocolError(f"not a RESP2 reply: {line[:40]!r}") from None
        if kind == b":":
            return size
        if kind == b"$":
            if size < 0:
                return None
            data = self._file.read(size + 2)
            if len(data) != size + 2:
                raise ProtocolError("the connection closed mid-reply")
            return data[:-2]
        if kind == b"*":
            return None if size < 0 else [self._reply() for _ in range(size)]
        raise ProtocolError(f"not a RESP2 reply: {line[:40]!r}")

    def close(self) -> None:
        self._file.close()
        self._sock.close()


class QuickReads:
    """`get`, `mget` and `zscore` on our own socket while it works; on redis-py otherwise.

    `fallback` returns the redis-py client; it is called only when needed, so a command
    that never needs it never imports it. One socket, one command at a time: for a
    short-lived command's own thread, not for a web app's threads (redis-py's pool is).
    """

    def __init__(self, url: str, fallback: Callable[[], ScoreReads]) -> None:
        self._address = parse_url(url)
        self._fallback = fallback
        self._conn: RespConnection | None = None
        self.quick = self._address is not None  # False from the first failure on

    def get(self, name: str) -> bytes | None:
        reply = self._call("GET", name)
        return self._fallback().get(name) if reply is _FAILED else reply

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        reply = self._call("MGET", *keys)
        return list(self._fallback().mget(list(keys))) if reply is _FAILED else reply

    def zscore(self, name: str, member: str) -> float | None:
        reply = self._call("ZSCORE", name, member)
        if reply is _FAILED:
            reply = self._fallback().zscore(name, member)
        return None if reply is None else float(reply)

    def _call(self, *args: str) -> Any:
        if not self.quick or self._address is None:
            return _FAILED
        try:
            if self._conn is None:
                self._conn = RespConnection(self._address)
            return self._conn.call(*args)
        except (OSError, ProtocolError, ReplyError):
            self.close()
            self.quick = False
            return _FAILED

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()


_FAILED: Any = object()
