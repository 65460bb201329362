"""The agent API's HTTP server: aiohttp's, with payivr's requests and responses.

aiohttp parses HTTP (a widely used parser maintained upstream; a hand-written one
in the PCI zone was one more thing to audit). Routing, bearer-token auth and the JSON
errors stay in `payivr.agent.api`, which sees only `Request` and returns `Response`
(a streaming one for SSE), so the routes do not depend on the server library.

Limits: request line and each header at most MAX_HEADER_BYTES, at most MAX_HEADERS
headers, a body at most MAX_BODY_BYTES (413), read within READ_TIMEOUT_S (408); a
connection that sends no complete request head within READ_TIMEOUT_S is closed
(aiohttp's keep-alive timer starts when the connection opens). No access log and
nothing of a request body is ever logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

log = logging.getLogger("payivr.agent.http")

MAX_HEADER_BYTES = 8 * 1024
MAX_HEADERS = 64
MAX_BODY_BYTES = 64 * 1024
READ_TIMEOUT_S = 10.0
# How long `stop()` lets open responses (SSE streams see `stopping`) finish.
SHUTDOWN_GRACE_S = 2.0

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


class _NoRequestBytes(logging.Filter):
    """aiohttp's parser errors quote the offending request bytes (a header, a line of
    a body): keep only the kind of error, at WARNING (the client's fault)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        record.msg = "agent API: refused a malformed request (%s)"
        record.args = (type(exc).__name__ if exc is not None else "error",)
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


# Given to aiohttp's protocol handler instead of its own `aiohttp.server` logger.
_server_log = logging.getLogger("payivr.agent.http.server")
_server_log.addFilter(_NoRequestBytes())


async def _read_request(raw: web.Request, read_timeout_s: float) -> Request | Response:
    """payivr's Request from aiohttp's, or the error Response for a bad body."""
    try:
        body = await asyncio.wait_for(raw.read(), read_timeout_s)
    except web.HTTPRequestEntityTooLarge:
        return error(413, "bad-http", "body too large")
    except TimeoutError:
        return error(408, "bad-http", "request body not received in time")
    headers = {name.lower(): value for name, value in raw.headers.items()}
    query = {name: raw.query.getone(name) for name in raw.query}
    return Request(raw.method.upper(), raw.path, query, headers, body)


async def _send(raw: web.Request, response: Response) -> web.StreamResponse:
    headers = {**SECURITY_HEADERS, **response.headers}
    if response.stream is None:
        return web.Response(
            status=response.status,
            body=response.body,
            headers={**headers, "Content-Type": response.content_type},
        )
    out = web.StreamResponse(status=response.status, headers=headers)
    out.content_type = response.content_type.split(";", 1)[0]
    out.charset = "utf-8" if "charset=utf-8" in response.content_type else None
    await out.prepare(raw)
    try:
        async for chunk in response.stream:
            await out.write(chunk)
    except ConnectionError:
        pass  # the client went away: the stream ends here
    finally:
        close = getattr(response.stream, "aclose", None)
        if close is not None:
            await close()  # ends the generator's Redis read now, not at garbage collection
    return out


async def _no_server_banner(_request: web.Request, response: web.StreamResponse) -> None:
    """No library name or version in the PCI zone's responses."""
    response.headers.popall("Server", None)


class HttpServer:
    """Serves `handler` (payivr.agent.api.AgentApi) on host:port with aiohttp."""

    def __init__(
        self, handler: Handler, host: str, port: int, *, read_timeout_s: float = READ_TIMEOUT_S
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.read_timeout_s = read_timeout_s
        self._runner: web.AppRunner | None = None

    async def _dispatch(self, raw: web.Request) -> web.StreamResponse:
        request = await _read_request(raw, self.read_timeout_s)
        if isinstance(request, Response):
            refused = await _send(raw, request)
            refused.force_close()  # the rest of the body is not read: drop the connection
            return refused
        try:
            response = await self.handler(request)
        except Exception:
            # The message names the route only: request bodies are never logged.
            log.exception("agent API: %s %s failed", request.method, request.path)
            response = error(500, "internal-error", "internal error")
        return await _send(raw, response)

    async def start(self) -> None:
        app = web.Application(
            client_max_size=MAX_BODY_BYTES,
            handler_args={
                "max_line_size": MAX_HEADER_BYTES,
                "max_field_size": MAX_HEADER_BYTES,
                "max_headers": MAX_HEADERS,
                "keepalive_timeout": self.read_timeout_s,
                # After a refused body, the rest is read (and dropped) this long at most.
                "lingering_time": self.read_timeout_s,
                "logger": _server_log,
            },
        )
        app.router.add_route("*", "/{path:.*}", self._dispatch)
        app.on_response_prepare.append(_no_server_banner)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        for address in self._runner.addresses:
            self.port = int(address[1])
        log.info("agent API listening on http://%s:%d/", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
