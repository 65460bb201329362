"""The callbacks' HTTP/1.1 client against real sockets on loopback that answer as told:
the peer check, one write per request, answer framing, connection reuse, timeouts."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from payivr.callbacks.client import CallbackClient, ProtocolError, check_peer, target_of
from payivr.callbacks.policy import NotAllowed

pytestmark = pytest.mark.integration

CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
HEAD = b"POST /cb HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n"
BODY = b"{}"

# answer(connection number, request number on it) -> bytes to send, or None: close
Answerer = Callable[[int, int], bytes | None]


class Server:
    """A raw TCP server: reads each request (head + Content-Length body), answers with
    the bytes the test gives, records what it received and on which connection."""

    def __init__(self, answer: Answerer) -> None:
        self.answer = answer
        self.requests: list[tuple[int, bytes]] = []
        self.connections = 0
        self.port = 0
        self.close_after_answer = False
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number, nth = self.connections, 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                nth += 1
                self.requests.append((number, head + body))
                reply = self.answer(number, nth)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if self.close_after_answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def target(self, path: str = "/cb") -> object:
        return target_of(urlsplit(f"http://127.0.0.1:{self.port}{path}"))


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def post_twice(server: Server, client: CallbackClient) -> list[int]:
    statuses = []
    for _ in range(2):
        answer = await client.post(server.target(), True, HEAD, BODY)  # type: ignore[arg-type]
        statuses.append(answer.status)
    return statuses


@pytest.mark.parametrize(
    ("reply", "status", "reused"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, True),
        (CHUNKED + b"5;x=y\r\nhello\r\n0\r\n\r\n", 200, True),
        (CHUNKED + b"2\r\nok\r\n0\r\nTrailer-Field: 1\r\n\r\n", 200, True),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 204, True),
        (b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 202, False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 200, False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n" + b"x" * 70000, 200, False),
        (b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", 503, True),
    ],
)
def test_answer_framing_decides_reuse(reply: bytes, status: int, reused: bool) -> None:
    async def scenario() -> tuple[list[int], int]:
        async with Server(lambda _c, _n: reply) as server:
            client = CallbackClient(1.0, 2.0)
            try:
                return await post_twice(server, client), server.connections
            finally:
                client.close()

    statuses, connections = run(scenario())  # type: ignore[misc]
    assert statuses == [status, status]
    assert connections == (1 if reused else 2)


def test_an_answer_without_length_ends_at_close_and_is_not_reused() -> None:
    async def scenario() -> tuple[list[int], int]:
        async with Server(lambda _c, _n: b"HTTP/1.1 200 OK\r\n\r\nbody until close") as server:
            server.close_after_answer = True
            client = CallbackClient(1.0, 2.0)
            try:
                return await post_twice(server, client), server.connections
            finally:
                client.close()

    statuses, connections = run(scenario())  # type: ignore[misc]
    assert statuses == [200, 200] and connections == 2


@pytest.mark.parametrize(
    "reply",
    [
        b"HELLO\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\n no-name\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    ],
)
def test_answers_that_are_not_http_are_refused(reply: bytes) -> None:
    async def scenario() -> None:
        async with Server(lambda _c, _n: reply) as server:
            client = CallbackClient(1.0, 2.0)
            try:
                await client.post(server.target(), True, HEAD, BODY)  # type: ignore[arg-type]
            finally:
                client.close()

    with pytest.raises(ProtocolError):
        run(scenario())


def test_a_kept_alive_connection_closed_by_the_server_is_replaced_once() -> None:
    """The server drops its kept-alive connection on the second request without an
    answer (as one closing an idle connection would): the client sends it again on a
    new connection, once, and gets the answer."""

    def answer(connection: int, nth: int) -> bytes | None:
        if connection == 1 and nth == 2:
            return None
        return b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    async def scenario() -> tuple[list[int], Server]:
        async with Server(answer) as server:
            client = CallbackClient(1.0, 2.0)
            try:
                return await post_twice(server, client), server
            finally:
                client.close()

    statuses, server = run(scenario())  # type: ignore[misc]
    assert statuses == [200, 200]
    assert [c for c, _ in server.requests] == [1, 1, 2]


def test_no_answer_within_the_read_timeout_is_a_timeout() -> None:
    async def scenario() -> float:
        async with Server(lambda _c, _n: b"") as server:
            client = CallbackClient(1.0, 0.3)
            started = time.monotonic()
            try:
                await client.post(server.target(), True, HEAD, BODY)  # type: ignore[arg-type]
            finally:
                client.close()
            return time.monotonic() - started

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        run(scenario())
    assert time.monotonic() - started < 2.0


def test_head_and_body_leave_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    sends: list[int] = []
    original = socket.socket.send

    def counting(self: socket.socket, data: bytes, *args: object) -> int:
        sends.append(len(data))
        return original(self, data, *args)  # type: ignore[arg-type]

    async def scenario() -> Server:
        async with Server(lambda _c, _n: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as server:
            client = CallbackClient(1.0, 2.0)
            monkeypatch.setattr(socket.socket, "send", counting)
            try:
                await client.post(server.target(), True, HEAD, BODY)  # type: ignore[arg-type]
            finally:
                monkeypatch.undo()
                client.close()
            return server

    server = run(scenario())
    # The server's own writes go through its transport too: count the client's one.
    assert sends.count(len(HEAD) + len(BODY)) == 1
    assert server.requests == [(1, HEAD + BODY)]  # type: ignore[attr-defined]


def test_peer_check_refuses_a_loopback_peer_unless_private_is_allowed() -> None:
    """The check of the address actually connected to, on a real connected socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        for allow_private in (False, True):
            sock = socket.create_connection(listener.getsockname(), timeout=2)
            if allow_private:
                check_peer(sock, allow_private)
                assert sock.fileno() != -1
                sock.close()
            else:
                with pytest.raises(NotAllowed) as info:
                    check_peer(sock, allow_private)
                assert info.value.reason == "address-not-allowed"
                assert sock.fileno() == -1  # closed before anything went out
    finally:
        listener.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_strict_client_sends_nothing_to_a_private_address(host: str) -> None:
    async def scenario() -> Server:
        async with Server(lambda _c, _n: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as server:
            client = CallbackClient(1.0, 2.0)
            to = target_of(urlsplit(f"http://{host}:{server.port}/cb"))
            try:
                with pytest.raises(NotAllowed) as info:
                    await client.post(to, False, HEAD, BODY)
                assert info.value.reason == "address-not-allowed"
            finally:
                client.close()
            await asyncio.sleep(0.05)
            return server

    server = run(scenario())
    assert server.connections == 0  # type: ignore[attr-defined]


def test_request_target_is_quoted_and_host_header_carries_a_non_default_port() -> None:
    to = target_of(urlsplit("https://CB.Example.com:8443/pay result?a=b c"))
    assert to.target == b"/pay%20result?a=b%20c"
    assert to.host_header == b"cb.example.com:8443"
    assert target_of(urlsplit("https://cb.example.com/")).host_header == b"cb.example.com"
    with pytest.raises(NotAllowed):
        target_of(urlsplit("https://cb.exa mple.com/"))
    # No header injection through the URL: CR/LF never reach the request line.
    injected = target_of(urlsplit("https://cb.example.com/a\r\nX-Evil: 1"))
    assert b"\r" not in injected.target and b"\n" not in injected.target
