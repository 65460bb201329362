"""The agent API (SPEC section 9): find a call, start a payment, restart, cancel, watch.

Every `/v1` route needs `Authorization: Bearer <token>`; the token says which
merchant is asking, and a merchant only ever sees its own calls and payments. The
routes and their bodies are documented in `openapi.yaml` beside this file (served at
`/openapi.yaml`); the panel (`/panel/`) is a static page that uses them.

Nothing here ever sees a card digit: the caller keys into FreeSWITCH, the driver
hands the plan `SecretDigits`, and what comes back over Redis is progress events
(counts, names, verdicts) and the SPEC 7 result with its masked card.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from payivr.agent.bus import FIND_KINDS, AgentBus, CallInfo
from payivr.agent.http import Request, Response, error, json_response
from payivr.agent.settings import MerchantTokens
from payivr.core.config import Config
from payivr.core.errors import Rejection
from payivr.core.pan import contains_card_number
from payivr.core.plan.fields import Field
from payivr.core.request import parse_request
from payivr.core.result import callback_payload
from payivr.core.session import Session, SessionStore

# JSON body field -> SPEC 2 header. The merchant comes from the token, the Call-ID
# from the call, and the call stays with the agent (no return target).
PAYMENT_FIELDS: dict[str, str] = {
    "operation": "x-pay-operation",
    "order": "x-pay-order",
    "amount": "x-pay-amount",
    "currency": "x-pay-currency",
    "token": "x-pay-token",
    "callback_url": "x-pay-callback-url",
    "language": "x-pay-language",
    "description": "x-pay-description",
}
_CALL = r"(?P<call>[A-Za-z0-9-]{1,64})"
_PAYMENT = r"(?P<payment>[A-Za-z0-9_-]{16,64})"
_STREAM_ID = re.compile(r"^(0|\d{1,20}-\d{1,20})$")
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".yaml": "application/yaml",
}
PANEL_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _load_static() -> dict[str, tuple[bytes, str]]:
    """The panel's files and the OpenAPI document, read once (no path ever joined)."""
    files: dict[str, tuple[bytes, str]] = {}
    package = resources.files("payivr.agent")
    for entry in (package / "static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in STATIC_TYPES:
            files["/panel/" + entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    files["/panel/"] = files["/panel/index.html"]
    files["/openapi.yaml"] = ((package / "openapi.yaml").read_bytes(), STATIC_TYPES[".yaml"])
    return files


@dataclass
class ApiContext:
    config: Config
    tokens: MerchantTokens
    bus: AgentBus
    store: SessionStore
    session_ttl_s: int = 3600
    sse_block_ms: int = 15000
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


class AgentApi:
    """Routes requests; one instance per server."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.static = _load_static()
        self.stopping = asyncio.Event()
        self.routes: list[tuple[str, re.Pattern[str], Any]] = [
            ("GET", re.compile(r"^/v1/calls$"), self.find_call),
            ("GET", re.compile(rf"^/v1/calls/{_CALL}$"), self.get_call),
            ("POST", re.compile(rf"^/v1/calls/{_CALL}/payments$"), self.start_payment),
            ("GET", re.compile(rf"^/v1/calls/{_CALL}/events$"), self.events),
            (
                "POST",
                re.compile(rf"^/v1/calls/{_CALL}/payments/{_PAYMENT}/restart$"),
                self.restart_field,
            ),
            (
                "POST",
                re.compile(rf"^/v1/calls/{_CALL}/payments/{_PAYMENT}/cancel$"),
                self.cancel_payment,
            ),
            ("GET", re.compile(rf"^/v1/payments/{_PAYMENT}$"), self.get_payment),
        ]

    async def __call__(self, request: Request) -> Response:
        if request.method == "GET" and request.path in ("/", "/panel"):
            return Response(302, b"", "text/plain", {"Location": "/panel/"})
        if request.method == "GET" and request.path == "/healthz":
            return json_response(200, {"ok": True})
        if request.method == "GET" and request.path in self.static:
            body, kind = self.static[request.path]
            headers = {"Content-Security-Policy": PANEL_CSP} if kind.startswith("text/html") else {}
            return Response(200, body, kind, headers)
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if match is None:
                continue
            if request.method != method:
                return error(405, "method-not-allowed", f"use {method}")
            merchant = self._authenticate(request)
            if merchant is None:
                response = error(401, "unauthorized", "a valid bearer token is required")
                response.headers["WWW-Authenticate"] = 'Bearer realm="payivr-agent"'
                return response
            result: Response = await handler(request, merchant, **match.groupdict())
            return result
        return error(404, "not-found", "no such resource")

    def _authenticate(self, request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.ctx.tokens.merchant_for(token.strip())

    async def _own_call(self, merchant: str, call: str) -> CallInfo | None:
        info = await self.ctx.bus.get_call(call)
        return info if info is not None and info.merchant == merchant else None

    # -- routes ----------------------------------------------------------------------

    async def find_call(self, request: Request, merchant: str) -> Response:
        """`GET /v1/calls?call_id=...` (or `ref=...`, `agent=...`)."""
        given = [(by, request.query[by]) for by in FIND_KINDS if request.query.get(by)]
        if len(given) != 1:
            return error(400, "bad-query", "give exactly one of call_id, ref, agent")
        by, value = given[0]
        info = await self.ctx.bus.find_call(merchant, by, value)
        if info is None or info.state == "ended":
            return error(404, "call-not-found", "no active call matches")
        return json_response(200, await self._call_view(info))

    async def get_call(self, request: Request, merchant: str, call: str) -> Response:
        info = await self._own_call(merchant, call)
        if info is None:
            return error(404, "call-not-found", "no such call")
        return json_response(200, await self._call_view(info))

    async def _call_view(self, info: CallInfo) -> dict[str, object]:
        view: dict[str, object] = dict(info.public())
        view["active_payment"] = await self.ctx.bus.active_payment(info.call)
        view["events"] = f"/v1/calls/{info.call}/events"
        return view

    async def start_payment(self, request: Request, merchant: str, call: str) -> Response:
        info = await self._own_call(merchant, call)
        if info is None or info.state == "ended":
            return error(404, "call-not-found", "no such active call")
        try:
            body = request.json()
        except ValueError:
            return error(400, "bad-json", "the body must be a JSON object")
        if not isinstance(body, dict):
            return error(400, "bad-json", "the body must be a JSON object")
        unknown = sorted(set(body) - set(PAYMENT_FIELDS))
        if unknown:
            return error(400, "bad-request", f"unknown field {unknown[0]}", field=unknown[0])
        fields = {"x-pay-merchant": merchant, "x-pay-return": "hangup"}
        for name, value in body.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, str | int):
                return error(400, "bad-request", f"{name} must be a string", field=name)
            text = str(value)
            # An agent typing a card number into a field would put it in Redis.
            if contains_card_number(text):
                return error(400, "bad-request", f"{name} looks like card data", field=name)
            fields[PAYMENT_FIELDS[name]] = text
        merchant_config = self.ctx.config.merchant(merchant)
        if merchant_config is None:
            return error(404, "unknown-merchant", "the token's merchant is not configured")
        try:
            payment_request = parse_request(
                fields, merchant_config, call_id=info.call_id or info.call
            )
        except Rejection as rejection:
            name = _field_of(rejection.header)
            return error(400, "bad-request", f"{name}: {rejection.problem}", field=name)
        session = Session.new(payment_request, self.ctx.now())
        if not await self.ctx.bus.claim_payment(call, session.id):
            return error(409, "payment-in-progress", "this call already has a payment running")
        await asyncio.to_thread(self.ctx.store.create, session, self.ctx.session_ttl_s)
        await self.ctx.bus.update_call(call, payment=session.id)
        await self.ctx.bus.send_command(call, "start", payment=session.id)
        return json_response(
            202,
            {
                "payment": session.id,
                "call": call,
                "state": "starting",
                "events": f"/v1/calls/{call}/events",
            },
        )

    async def _control(
        self, merchant: str, call: str, payment: str, command: str, **extra: str
    ) -> Response:
        info = await self._own_call(merchant, call)
        if info is None:
            return error(404, "call-not-found", "no such call")
        if await self.ctx.bus.active_payment(call) != payment:
            return error(409, "payment-not-active", "that payment is not running on this call")
        await self.ctx.bus.send_command(call, command, payment=payment, **extra)
        return json_response(202, {"payment": payment, "command": command, **extra})

    async def restart_field(
        self, request: Request, merchant: str, call: str, payment: str
    ) -> Response:
        try:
            body = request.json()
        except ValueError:
            return error(400, "bad-json", "the body must be a JSON object")
        field_name = body.get("field") if isinstance(body, dict) else None
        if field_name not in {f.value for f in Field}:
            return error(
                400, "bad-request", "field must be one of " + ", ".join(Field), field="field"
            )
        return await self._control(merchant, call, payment, "restart", field=str(field_name))

    async def cancel_payment(
        self, request: Request, merchant: str, call: str, payment: str
    ) -> Response:
        return await self._control(merchant, call, payment, "cancel")

    async def get_payment(self, request: Request, merchant: str, payment: str) -> Response:
        session = await asyncio.to_thread(self.ctx.store.load, payment)
        if session is None or session.request.merchant != merchant:
            return error(404, "payment-not-found", "no such payment")
        return json_response(
            200,
            {
                "payment": session.id,
                "state": str(session.state),
                "order": session.request.order,
                "operation": str(session.request.operation),
                "amount": session.request.amount,
                "currency": session.request.currency,
                "result": callback_payload(session.result) if session.result else None,
            },
        )

    async def events(self, request: Request, merchant: str, call: str) -> Response:
        """Server-sent events: every progress event of every payment on the call."""
        info = await self._own_call(merchant, call)
        if info is None:
            return error(404, "call-not-found", "no such call")
        after = request.headers.get("last-event-id") or request.query.get("after") or "0"
        if not _STREAM_ID.match(after):
            return error(400, "bad-query", "after / Last-Event-ID must be a stream id")
        return Response(
            200,
            content_type="text/event-stream; charset=utf-8",
            headers={"X-Accel-Buffering": "no"},
            stream=self._sse(call, after),
        )

    async def _sse(self, call: str, after: str) -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        last = after
        while not self.stopping.is_set():
            entries = await self.ctx.bus.read_progress(call, last, self.ctx.sse_block_ms)
            for entry_id, data in entries:
                last = entry_id
                payload = json.dumps(data, separators=(",", ":"))
                kind = data.get("type", "message")
                yield f"id: {entry_id}\nevent: {kind}\ndata: {payload}\n\n".encode()
            if not entries:
                info = await self.ctx.bus.get_call(call)
                if info is None or info.state == "ended":
                    yield b"event: call.ended\ndata: {}\n\n"
                    return
                yield b": keep-alive\n\n"


def _field_of(header: str) -> str:
    """The JSON field name for a SPEC 2 header named in a Rejection."""
    lowered = header.lower()
    for name, h in PAYMENT_FIELDS.items():
        if h == lowered:
            return name
    return header
