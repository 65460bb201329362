"""A tiny Zendesk stand-in on loopback for `payivr flows demo` (not for production).

It answers the three calls the reference flow and its comment make, as Zendesk's
API does, for one demo caller (+34 600 111 222, locale es-ES, an open ticket):
user search by phone, the user's requested tickets, a ticket update with a comment
(kept in ``comments``). Basic auth ``{email}/token:{token}`` is checked.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEMO_EMAIL = "demo@acme.example"
DEMO_TOKEN = "demo-zendesk-token"  # noqa: S105 (a loopback demo's stand-in credential)
DEMO_CALLER = "+34 600 111 222"
USER = {"id": 501, "name": "Ana García", "phone": DEMO_CALLER, "locale": "es-ES"}
TICKETS = [
    {"id": 8123, "requester_id": 501, "status": "open", "updated_at": "2026-12-01T10:00:00Z"},
    {"id": 7001, "requester_id": 501, "status": "solved", "updated_at": "2026-11-20T10:00:00Z"},
]


class DemoZendesk:
    def __init__(self) -> None:
        self.comments: list[tuple[str, dict[str, Any]]] = []
        auth = base64.b64encode(f"{DEMO_EMAIL}/token:{DEMO_TOKEN}".encode()).decode()
        self._auth = f"Basic {auth}"
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> DemoZendesk:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, method: str, url: str, body: object) -> tuple[int, object]:
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        digits = "".join(c for c in DEMO_CALLER if c.isdigit())
        if method == "GET" and parts.path == "/api/v2/users/search.json":
            users = [USER] if query.get("query") == f"phone:{digits}" else []
            return 200, {"users": users, "count": len(users), "next_page": None}
        if method == "GET" and parts.path == "/api/v2/users/501/tickets/requested.json":
            return 200, {"tickets": TICKETS, "meta": {"has_more": False}, "links": {"next": None}}
        if method == "PUT" and parts.path.startswith("/api/v2/tickets/"):
            ticket = parts.path.rsplit("/", 1)[-1].removesuffix(".json")
            ticket_doc = body.get("ticket") if isinstance(body, dict) else None
            comment = ticket_doc.get("comment") if isinstance(ticket_doc, dict) else None
            self.comments.append((ticket, comment if isinstance(comment, dict) else {}))
            return 200, {"ticket": {"id": int(ticket)}}
        return 404, {"error": "InvalidEndpoint"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet demo
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status: int
                doc: object
                if self.headers.get("Authorization") != stand_in._auth:
                    status, doc = 401, {"error": "Couldn't authenticate you"}
                else:
                    body = json.loads(raw) if raw else None
                    status, doc = stand_in._answer(self.command, self.path, body)
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = _serve

        return Handler
