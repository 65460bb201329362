"""A small HTTP/1.1 server on asyncio streams: enough for a JSON API, SSE and a few files.

Why not a framework: the API has a handful of routes, one streaming response (SSE)
and static files; the standard library keeps the secure zone's dependency list (and
its audit) short. One request per connection (`Connection: close`), bodies bounded,
every read under a timeout, nothing of a request body ever logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("payivr.agent.http")

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
READ_TIMEOUT_S = 10.0

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lowercase names
    body: bytes = b""

    def json(self) -> object:
        return json.loads(self.body or b"{}")


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    # A streaming response yields chunks instead of `body` (SSE).
    stream: AsyncIterator[bytes] | None = None


def json_response(status: int, data: object, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode("utf-8")
    return Response(status, body, "application/json", dict(headers or {}))


def error(status: int, code: str, message: str, **extra: object) -> Response:
    return json_response(status, {"error": code, "message": message, **extra})


Handler = Callable[[Request], Awaitable[Response]]


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_request(reader: asyncio.StreamReader) -> Request:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
    except asyncio.LimitOverrunError:
        raise HttpError(431, "request header too large") from None
    except asyncio.IncompleteReadError as exc:
        raise ConnectionError("client went away") from exc
    if len(head) > MAX_HEADER_BYTES:
        raise HttpError(431, "request header too large")
    lines = head.decode("iso-8859-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ", 2)
    except ValueError:
        raise HttpError(400, "bad request line") from None
    if not version.startswith("HTTP/1."):
        raise HttpError(505, "HTTP/1.x only")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpError(400, "bad header line")
        headers[name.strip().lower()] = value.strip()
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise HttpError(400, "bad Content-Length")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise HttpError(413, "body too large")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise HttpError(411, "send a Content-Length")
    body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT_S) if length else b""
    parts = urlsplit(target)
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return Request(method.upper(), unquote(parts.path), query, headers, body)


def _head(status: int, headers: Mapping[str, str]) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("iso-8859-1")


async def write_response(writer: asyncio.StreamWriter, response: Response) -> None:
    headers = {**SECURITY_HEADERS, "Content-Type": response.content_type, **response.headers}
    headers["Connection"] = "close"
    if response.stream is None:
        headers["Content-Length"] = str(len(response.body))
        writer.write(_head(response.status, headers) + response.body)
        await writer.drain()
        return
    writer.write(_head(response.status, headers))
    await writer.drain()
    async for chunk in response.stream:
        writer.write(chunk)
        await writer.drain()


class HttpServer:
    """Accepts connections and hands each parsed request to `handler`."""

    def __init__(self, handler: Handler, host: str, port: int) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=MAX_HEADER_BYTES, reuse_address=True
        )
        sockets = self._server.sockets or ()
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("agent API listening on http://%s:%d/", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            try:
                request = await read_request(reader)
            except HttpError as exc:
                await write_response(writer, error(exc.status, "bad-http", str(exc)))
                return
            except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
                return
            try:
                response = await self.handler(request)
            except Exception:
                # The message names the route only: request bodies are never logged.
                log.exception("agent API: %s %s failed", request.method, request.path)
                response = error(500, "internal-error", "internal error")
            with contextlib.suppress(ConnectionError):
                await write_response(writer, response)
        except asyncio.CancelledError:
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            if task is not None:
                self._tasks.discard(task)
