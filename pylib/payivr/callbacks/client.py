"""The callbacks' HTTP/1.1 client on asyncio: POST only, keep-alive pools per host.

Why its own client (measured, docs/callbacks.md): a callback is one small POST whose
answer only matters by its status code. Measured on one endpoint (`bench/
callbacks_throughput.py --compare-clients`): requests about 1.6 ms of CPU per POST,
aiohttp about 0.28 ms, this client about 0.09 ms; one worker process's throughput is
that cost plus Redis and signing. It does exactly what a callback needs and refuses the rest:

- the host's addresses are resolved and every one checked against the merchant's
  policy, and the socket's peer (the address actually connected to) is checked again
  before a byte or a TLS handshake goes out (`address-not-allowed`);
- TLS with the system's CA store and host name verification, always;
- no redirects, no proxies, no cookies, no compression;
- the answer's head is parsed strictly; at most 64 KiB of body is read and thrown
  away (chunked or Content-Length). A connection goes back to its pool only when the
  answer's framing was clear and fully read; otherwise it is closed.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import SplitResult, quote

from payivr.callbacks.policy import NotAllowed, address_allowed, check_addresses

MAX_RESPONSE_BYTES = 64 * 1024
MAX_HEAD_BYTES = 64 * 1024
# Pooled connections idle longer than this are closed (and the host resolved and
# checked again for the next one); most servers close theirs after 5-75 s.
IDLE_S = 15.0
# How often the deadlines of awaited answers are checked. One timer per request
# (asyncio.timeout) cost more CPU than the rest of the request; read timeouts are
# seconds, so checking every 50 ms is plenty.
DEADLINE_TICK_S = 0.05
# RFC 3986 characters that stay as they are in a request target (the rest is quoted).
_TARGET_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = _TARGET_SAFE + "?"


class ProtocolError(Exception):
    """The endpoint's answer is not HTTP/1.1 this client can read (the peer misbehaved)."""


class EndpointClosed(ConnectionError):
    """The connection ended before any byte of an answer."""


@dataclass(frozen=True)
class Target:
    """Where a callback goes: the pool key and the request line's parts."""

    scheme: str
    host: str
    port: int
    target: bytes  # path and query, quoted
    host_header: bytes


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    location: str


def target_of(parts: SplitResult) -> Target:
    """The request target of a URL already checked by policy.check_url."""
    host = parts.hostname or ""
    if any(c in host for c in " \r\n\t/\\"):
        raise NotAllowed("bad-url", "not a valid host")
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise NotAllowed("bad-url", "not a valid host name") from None
    shown = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
    if parts.port is not None and port != (443 if https else 80):
        shown = f"{shown}:{port}"
    path = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_QUERY_SAFE)
    return Target(parts.scheme, host, port, path.encode("ascii"), shown.encode("ascii"))


def check_peer(sock: socket.socket, allow_private: bool) -> None:
    """Refuse (and close) a connected socket whose peer the policy does not allow."""
    peer = str(sock.getpeername()[0])
    if not address_allowed(peer, allow_private):
        sock.close()
        raise NotAllowed("address-not-allowed", f"connected to {peer}")


class _Connection:
    __slots__ = ("deadline", "expired", "idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0
        self.deadline = 0.0  # while an answer is awaited: when it is too late
        self.expired = False

    def usable(self, now: float) -> bool:
        return (
            not self.writer.transport.is_closing()
            and not self.reader.at_eof()
            and now - self.idle_since < IDLE_S
        )

    def close(self) -> None:
        self.writer.transport.abort()


PoolKey = tuple[str, str, int, bool]


class CallbackClient:
    """POSTs to callback endpoints; one event loop, connections reused per host."""

    def __init__(self, connect_timeout_s: float, read_timeout_s: float) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._tls = ssl.create_default_context()
        self._idle: dict[PoolKey, deque[_Connection]] = {}
        self._waiting: set[_Connection] = set()
        self._watch: asyncio.Task[None] | None = None

    async def post(self, to: Target, allow_private: bool, head: bytes, body: bytes) -> Answer:
        """Send `head` (the request head, ending in a blank line) and `body`; the answer.

        Raises NotAllowed, OSError (incl. TimeoutError, ssl.SSLError), ProtocolError.
        """
        key = (to.scheme, to.host, to.port, allow_private)
        conn = self._checkout(key)
        if conn is not None:
            try:
                return await self._exchange(key, conn, head + body)
            except (EndpointClosed, ConnectionResetError, BrokenPipeError):
                # A kept-alive connection the server closed as we reused it: nothing
                # was answered, so try once on a new one (as HTTP clients do).
                pass
        conn = await self._connect(to, allow_private)
        return await self._exchange(key, conn, head + body)

    def close_idle(self) -> None:
        """Close pooled connections idle too long (cheap; call it now and then)."""
        now = time.monotonic()
        for key, idle in list(self._idle.items()):
            while idle and not idle[0].usable(now):
                idle.popleft().close()
            if not idle:
                del self._idle[key]

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        for conn in self._waiting:
            conn.close()
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    def _checkout(self, key: PoolKey) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be closed
            if conn.usable(now):
                return conn
            conn.close()
        return None

    async def _exchange(self, key: PoolKey, conn: _Connection, request: bytes) -> Answer:
        keep = False
        conn.deadline = time.monotonic() + self.read_timeout_s
        self._waiting.add(conn)
        if self._watch is None or self._watch.done():
            self._watch = asyncio.get_running_loop().create_task(self._expire())
        try:
            conn.writer.write(request)
            try:
                answer, framing = await _read_head(conn.reader)
            except (OSError, ProtocolError, asyncio.IncompleteReadError):
                if conn.expired:
                    raise TimeoutError("no answer in time") from None
                raise
            # The status decides; the body is read only to reuse the connection.
            conn.deadline = time.monotonic() + self.read_timeout_s
            try:
                keep = await _skip_body(conn.reader, answer.status, framing)
            except (OSError, ProtocolError, asyncio.IncompleteReadError):
                keep = False
            return answer
        finally:
            self._waiting.discard(conn)
            if keep and not conn.expired:
                conn.idle_since = time.monotonic()
                self._idle.setdefault(key, deque()).append(conn)
            else:
                conn.close()

    async def _expire(self) -> None:
        """Close the connections whose answer is late (their reads then fail)."""
        while self._waiting:
            await asyncio.sleep(DEADLINE_TICK_S)
            now = time.monotonic()
            for conn in [c for c in self._waiting if c.deadline <= now]:
                conn.expired = True
                conn.close()

    async def _connect(self, to: Target, allow_private: bool) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout_s):
            infos = await loop.getaddrinfo(to.host, to.port, type=socket.SOCK_STREAM)
            check_addresses(to.host, [str(info[4][0]) for info in infos], allow_private)
            error: OSError = OSError(f"no address for {to.host}")
            for family, kind, proto, _name, address in infos:
                sock = socket.socket(family, kind, proto)
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, address)
                except OSError as exc:
                    sock.close()
                    error = exc
                    continue
                except BaseException:
                    sock.close()
                    raise
                check_peer(sock, allow_private)
                https = to.scheme == "https"
                try:
                    reader, writer = await asyncio.open_connection(
                        sock=sock,
                        ssl=self._tls if https else None,
                        server_hostname=to.host if https else None,
                        limit=MAX_HEAD_BYTES,
                    )
                except BaseException:
                    sock.close()
                    raise
                return _Connection(reader, writer)
            raise error


# -- reading an answer --------------------------------------------------------------
# Framing of the body: ("length", n), ("chunked", 0), ("none", 0), ("until-close", 0).
Framing = tuple[str, int]


async def _read_head(reader: asyncio.StreamReader) -> tuple[Answer, Framing]:
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise EndpointClosed("connection closed before an answer") from None
            raise ProtocolError("connection closed in the middle of the answer") from None
        except asyncio.LimitOverrunError:
            raise ProtocolError("answer head too long") from None
        answer, framing = _parse_head(head)
        if answer.status == 101:
            raise ProtocolError("101 Switching Protocols to a POST")
        if answer.status >= 200:
            return answer, framing
        # 1xx (100 Continue, 103 Early Hints): informational, the answer follows.


def _parse_head(head: bytes) -> tuple[Answer, Framing]:
    lines = head[:-4].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise ProtocolError("not an HTTP/1.1 status line")
    status = int(code)
    lengths: set[bytes] = set()
    chunked = until_close = False
    close = version == b"HTTP/1.0"
    location = b""
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise ProtocolError("malformed header line")
        name = name.lower()
        value = value.strip()
        if name == b"content-length":
            lengths.update(v.strip() for v in value.split(b","))
        elif name == b"transfer-encoding":
            codings = [c.strip().lower() for c in value.split(b",")]
            chunked = codings[-1] == b"chunked"
            until_close = not chunked
        elif name == b"connection":
            tokens = {t.strip().lower() for t in value.split(b",")}
            if b"close" in tokens:
                close = True
            elif b"keep-alive" in tokens:
                close = False
        elif name == b"location":
            location = value
    answer = Answer(status, reason.decode("latin-1")[:80], location.decode("latin-1"))
    framing: Framing
    if status in (204, 304):
        framing = ("none", 0)
    elif chunked or until_close:
        # Transfer-Encoding wins over Content-Length (RFC 9112 6.3).
        framing = ("chunked", 0) if chunked else ("until-close", 0)
    elif lengths:
        if len(lengths) != 1 or not next(iter(lengths)).isdigit():
            raise ProtocolError("conflicting or bad Content-Length")
        framing = ("length", int(next(iter(lengths))))
    else:
        framing = ("until-close", 0)
    if close:
        framing = ("until-close", 0)  # the body is only read to reuse the connection
    return answer, framing


async def _skip_body(reader: asyncio.StreamReader, status: int, framing: Framing) -> bool:
    """Read and drop the body; True if the connection may carry the next request."""
    kind, length = framing
    if kind == "none":
        return True
    if kind == "length":
        if length > MAX_RESPONSE_BYTES:
            return False
        await reader.readexactly(length)
        return True
    if kind == "chunked":
        return await _skip_chunked(reader)
    return False  # ends when the server closes: never reused


async def _skip_chunked(reader: asyncio.StreamReader) -> bool:
    total = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError("bad chunk size") from None
        if size < 0 or not size_text.isalnum():
            raise ProtocolError("bad chunk size")
        if size == 0:
            break
        total += size
        if total > MAX_RESPONSE_BYTES:
            return False
        chunk = await reader.readexactly(size + 2)
        if chunk[-2:] != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")
    for _ in range(100):  # trailer fields, then the blank line
        if await reader.readuntil(b"\r\n") == b"\r\n":
            return True
    return False
