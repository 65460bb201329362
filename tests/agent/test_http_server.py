"""The agent API's HTTP limits on the real service (aiohttp underneath): body and
header sizes, a client that stalls, auth before any route, keep-alive, SSE framing."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from payivr.agent.http import MAX_BODY_BYTES, MAX_HEADER_BYTES, HttpServer
from tests.agent.harness import ACME_TOKEN, AgentStack
from tests.support.servers import free_port

READ_TIMEOUT_S = 0.5


@pytest.fixture()
def stack(tmp_path: Path, redis_url: str) -> Iterator[AgentStack]:
    stack = AgentStack(tmp_path, redis_url).start()
    yield stack
    stack.close()


@pytest.fixture()
def short_timeout_port(stack: AgentStack) -> Iterator[int]:
    """A second server on the same API with a short read timeout."""
    assert stack.service is not None
    server = HttpServer(stack.service.api, "127.0.0.1", free_port(), read_timeout_s=READ_TIMEOUT_S)
    stack.submit(server.start()).result(5)
    yield server.port
    stack.submit(server.stop()).result(10)


def exchange(port: int, data: bytes, *, timeout: float = 5.0) -> tuple[bytes, float]:
    """Send `data`, read until the server closes; the reply and the seconds it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks), time.monotonic() - started


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")) else 0


def test_a_body_over_the_limit_is_refused_with_413(stack: AgentStack) -> None:
    body = b"{" + b" " * MAX_BODY_BYTES + b"}"
    response = stack.http.post(
        stack.base + "/v1/calls/abc/payments",
        data=body,
        headers={"Authorization": f"Bearer {ACME_TOKEN}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 413
    assert response.json()["error"] == "bad-http"
    assert response.headers["Cache-Control"] == "no-store"


def test_a_header_over_the_limit_is_refused_and_not_logged(
    stack: AgentStack, caplog: pytest.LogCaptureFixture
) -> None:
    port = stack.settings.listen_port
    head = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
        + b"a" * (MAX_HEADER_BYTES + 10)
        + b"\r\nConnection: close\r\n\r\n"
    )
    reply, _ = exchange(port, head)
    assert status_of(reply) in (400, 431), reply[:200]
    assert "aaaa" not in caplog.text and "malformed request (LineTooLong)" in caplog.text
    ok, _ = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(ok) == 200


def test_a_client_that_never_finishes_its_head_is_disconnected(short_timeout_port: int) -> None:
    reply, took = exchange(short_timeout_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    assert reply == b"" and took < READ_TIMEOUT_S + 2.0, took


def test_a_body_that_never_arrives_gets_408(short_timeout_port: int) -> None:
    head = (
        b"POST /v1/calls/abc/payments HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {ACME_TOKEN}\r\n".encode()
        + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    reply, took = exchange(short_timeout_port, head)
    assert status_of(reply) == 408 and b'"bad-http"' in reply, reply[:300]
    assert took < 2 * READ_TIMEOUT_S + 2.0  # the read, then the lingering close


def test_auth_is_checked_before_any_route_and_keep_alive_works(stack: AgentStack) -> None:
    port = stack.settings.listen_port
    two = (
        b"GET /v1/calls?agent=1001 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    reply, _ = exchange(port, two)
    first, _, second = reply.partition(b"HTTP/1.1 200")
    assert status_of(first) == 401 and b'Bearer realm="payivr-agent"' in first
    assert b'{"ok":true}' in second
    wrong = stack.api("DELETE", "/v1/calls/abc")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method-not-allowed"


def test_events_are_served_as_an_event_stream(stack: AgentStack) -> None:
    from payivr.agent.bus import CallInfo

    assert stack.service is not None
    bus = stack.service.api.ctx.bus
    info = CallInfo(call="call-sse-1", merchant="acme", state="connected")
    stack.submit(bus.register_call(info)).result(5)
    stack.submit(bus.end_call(info)).result(5)
    response = stack.http.get(
        f"{stack.base}/v1/calls/call-sse-1/events",
        headers={"Authorization": f"Bearer {ACME_TOKEN}"},
        stream=True,
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Server" not in response.headers
    text = b"".join(response.iter_content(None)).decode()
    assert text == "retry: 2000\n\nevent: call.ended\ndata: {}\n\n"
