"""A Zendesk-shaped HTTP server on 127.0.0.1 for tests (we cannot run Zendesk here).

It answers the calls payivr makes as Zendesk's documented API does:
- `GET /api/v2/users/search.json?query=phone:<digits>`: `{"users": [...], "next_page":
  null, "previous_page": null, "count": n}` (Search Users: offset pagination only);
- `GET /api/v2/users/{id}/tickets/requested.json`: with `page[size]` cursor
  pagination (`meta.has_more`, `meta.after_cursor`, `links.next`) in id order (the
  sort parameters reported ignored there), without it offset style (`next_page`,
  `count`) sorted by `sort_by`/`sort_order`;
- `PUT /api/v2/tickets/{id}.json` with `{"ticket": {"comment": {...}}}`: 200 with the
  ticket and an audit; a closed ticket 422 RecordInvalid "Status: closed prevents
  ticket update"; an unknown ticket 404 RecordNotFound;
- a wrong Authorization: 401 `{"error": "Couldn't authenticate you"}`;
- scripted failures: 429 with `Retry-After`, 500, a delay past the client's timeout.

Every request is recorded (method, path, query, Authorization header, JSON body) so
tests check exactly what went out.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.support.servers import free_port


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    authorization: str
    body: Any
    at: float


@dataclass
class Failure:
    """A scripted answer: `status` (429, 500, ...), `retry_after` header, `delay_s`."""

    status: int = 500
    retry_after: str | None = None
    delay_s: float = 0.0
    only_path_prefix: str = ""


@dataclass
class FakeZendesk:
    email: str = "agent@acme.example"
    api_token: str = "zd-test-token-0123456789"
    port: int = field(default_factory=free_port)
    users: list[dict[str, Any]] = field(default_factory=list)
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    # Answered to every request while set (Zendesk "down"): a status, e.g. 503.
    down_status: int | None = None
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- data -----------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def expected_authorization(self) -> str:
        raw = f"{self.email}/token:{self.api_token}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def add_user(self, user_id: int, name: str, phone: str, locale: str = "en-US") -> None:
        self.users.append(
            {"id": user_id, "name": name, "phone": phone, "locale": locale, "role": "end-user"}
        )

    def add_ticket(
        self, ticket_id: int, requester_id: int, status: str, updated_at: str, subject: str = ""
    ) -> None:
        self.tickets[ticket_id] = {
            "id": ticket_id,
            "url": f"{self.base_url}/api/v2/tickets/{ticket_id}.json",
            "requester_id": requester_id,
            "status": status,
            "subject": subject or f"Ticket {ticket_id}",
            "updated_at": updated_at,
            "created_at": updated_at,
        }

    def fail_next(self, *failures: Failure) -> None:
        with self._lock:
            self.failures.extend(failures)

    def recorded(self, method: str | None = None, path_prefix: str = "") -> list[Recorded]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and r.path.startswith(path_prefix)
            ]

    # -- server ---------------------------------------------------------------
    def start(self) -> FakeZendesk:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length", "0") or 0)
                raw = self.rfile.read(length) if length else b""
                # The client may have given up (a timeout test): nothing to answer then.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    fake._serve(self, raw)

            do_GET = _handle
            do_PUT = _handle
            do_POST = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- answers --------------------------------------------------------------
    def _serve(self, h: BaseHTTPRequestHandler, raw: bytes) -> None:
        parts = urlsplit(h.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record = Recorded(
            h.command, parts.path, query, h.headers.get("Authorization", ""), body, time.time()
        )
        with self._lock:
            self.requests.append(record)
            failure = None
            for i, f in enumerate(self.failures):
                if parts.path.startswith(f.only_path_prefix):
                    failure = self.failures.pop(i)
                    break
            down = self.down_status
        delay = self.delay_s + (failure.delay_s if failure else 0.0)
        if delay:
            time.sleep(delay)
        if down is not None:
            self._send(h, down, {"error": "ServiceUnavailable"})
            return
        if failure is not None and failure.status:
            headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
            if failure.status == 429:
                self._send_text(h, 429, "Too Many Requests", headers)
            else:
                self._send(h, failure.status, {"error": "InternalError"}, headers)
            return
        if record.authorization != self.expected_authorization:
            self._send(h, 401, {"error": "Couldn't authenticate you"})
            return
        status, answer = self._route(h.command, parts.path, query, body)
        self._send(h, status, answer)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        segments = path.strip("/").split("/")
        if method == "GET" and path == "/api/v2/users/search.json":
            return 200, self._search_users(query.get("query", ""))
        if (
            method == "GET"
            and len(segments) == 6
            and segments[:3] == ["api", "v2", "users"]
            and segments[4:] == ["tickets", "requested.json"]
        ):
            return 200, self._requested(int(segments[3]), query)
        if method == "PUT" and len(segments) == 4 and segments[:3] == ["api", "v2", "tickets"]:
            return self._update_ticket(int(segments[3].removesuffix(".json")), body)
        return 404, {"error": "InvalidEndpoint", "description": "Not found"}

    def _search_users(self, q: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = []
        if q.startswith("phone:"):
            digits = q[len("phone:") :]
            found = [
                u for u in self.users if "".join(c for c in u["phone"] if c.isdigit()) == digits
            ]
        return {"users": found, "next_page": None, "previous_page": None, "count": len(found)}

    def _requested(self, user_id: int, query: dict[str, str]) -> dict[str, Any]:
        mine = sorted(
            (t for t in self.tickets.values() if t["requester_id"] == user_id),
            key=lambda t: t["id"],
        )
        if "page[size]" not in query:
            # Offset pagination honours sort_by/sort_order.
            key = query.get("sort_by", "id")
            mine.sort(key=lambda t: t[key] if key in t else t["id"])
            if query.get("sort_order", "asc") == "desc":
                mine.reverse()
            return {"tickets": mine, "next_page": None, "previous_page": None, "count": len(mine)}
        # Under cursor pagination Zendesk has been reported (developer community, 2024)
        # to ignore sort_by/sort_order: the fake does the same, in id order.
        size = int(query["page[size]"])
        start = (
            int(base64.urlsafe_b64decode(query["page[after]"]).decode())
            if query.get("page[after]")
            else 0
        )
        page = mine[start : start + size]
        has_more = start + size < len(mine)
        after = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        before = base64.urlsafe_b64encode(str(start).encode()).decode()
        base = f"{self.base_url}/api/v2/users/{user_id}/tickets/requested.json"
        keep = {k: v for k, v in query.items() if not k.startswith("page[") or k == "page[size]"}
        return {
            "tickets": page,
            "meta": {"has_more": has_more, "after_cursor": after, "before_cursor": before},
            "links": {
                "next": f"{base}?{urlencode({**keep, 'page[after]': after})}" if has_more else None,
                "prev": f"{base}?{urlencode({**keep, 'page[before]': before})}",
            },
        }

    def _update_ticket(self, ticket_id: int, body: Any) -> tuple[int, Any]:
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            return 404, {"error": "RecordNotFound", "description": "Not found"}
        if ticket["status"] == "closed":
            return 422, {
                "error": "RecordInvalid",
                "description": "Record validation errors",
                "details": {"status": [{"description": "Status: closed prevents ticket update"}]},
            }
        comment = (body or {}).get("ticket", {}).get("comment")
        if not isinstance(comment, dict) or not comment.get("body"):
            return 422, {"error": "RecordInvalid", "description": "Record validation errors"}
        with self._lock:
            self.comments.setdefault(ticket_id, []).append(comment)
        return 200, {
            "ticket": ticket,
            "audit": {"ticket_id": ticket_id, "events": [{"type": "Comment", **comment}]},
        }

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler, status: int, doc: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(doc).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    @staticmethod
    def _send_text(
        h: BaseHTTPRequestHandler, status: int, text: str, headers: dict[str, str]
    ) -> None:
        data = text.encode()
        h.send_response(status)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)


def seeded(port: int | None = None) -> FakeZendesk:
    """A fake with the reference flow's data: a known caller with one ticket in every
    status (the latest unresolved is 9003, pending), a caller with no open ticket, and
    a number shared by two users."""
    fake = FakeZendesk(port=port) if port else FakeZendesk()
    fake.add_user(501, "Ana Caller", "+34 600 111 222", locale="es")
    fake.add_user(502, "Twin One", "+1 (513) 555-7611")
    fake.add_user(503, "Twin Two", "1-513-555-7611")
    fake.add_user(504, "Solved Sam", "+34 600 333 444")
    for tid, status, updated in [
        (9001, "new", "2026-11-01T10:00:00Z"),
        (9002, "open", "2026-11-02T10:00:00Z"),
        (9003, "pending", "2026-11-05T10:00:00Z"),
        (9004, "hold", "2026-11-03T10:00:00Z"),
        (9005, "solved", "2026-11-06T10:00:00Z"),
        (9006, "closed", "2026-11-07T10:00:00Z"),
    ]:
        fake.add_ticket(tid, 501, status, updated)
    fake.add_ticket(9101, 504, "solved", "2026-11-04T10:00:00Z")
    return fake


def main() -> None:
    """`python -m tests.support.fake_zendesk --port N`: serve the seeded fake until killed
    (for a demo or `flows simulate` against the fake)."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--port", type=int, default=0, help="0: a free port")
    args = ap.parse_args()
    fake = seeded(args.port or None).start()
    print(
        json.dumps({"base_url": fake.base_url, "email": fake.email, "api_token": fake.api_token}),
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
