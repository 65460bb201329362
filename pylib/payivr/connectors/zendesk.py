"""The Zendesk Support API calls the caller-aware flow makes (docs/connectors.md).

- Caller lookup: `GET /api/v2/users/search.json?query=phone:<digits>`. Zendesk's own
  guide for telephony integrations searches users by `phone:` with the number's digits
  only (no `+`, spaces or dashes). Search Users has offset pagination only; one page
  tells found / unknown / several apart, which is all a call needs.
- The caller's latest unresolved ticket: `GET /api/v2/users/{id}/tickets/requested.json`
  (`sort_by=updated_at&sort_order=desc`) with cursor pagination (`page[size]`, follow
  `links.next` while `meta.has_more`, a bounded number of pages): of the tickets whose
  status is below solved (new, open, pending, hold), the one updated last.
- The after-call note: `PUT /api/v2/tickets/{id}.json` with
  `{"ticket": {"comment": {"body": ..., "public": false}}}` (a private comment).
  A closed ticket cannot be updated: Zendesk answers 422 RecordInvalid with
  `details.status[].description` "Status: closed prevents ticket update" -> TicketNotEditable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from payivr.connectors.client import ConnectorClient, ConnectorError

# Status categories below "solved", in Zendesk's order new < open < pending < hold.
UNRESOLVED = ("new", "open", "pending", "hold")
PAGE_SIZE = 100
MAX_PAGES = 5


class TicketNotEditable(ConnectorError):
    """Zendesk refuses to update the ticket for good; `reason`: ticket-closed |
    ticket-not-found."""

    def __init__(self, reason: str, ticket_id: int, status: int | None) -> None:
        super().__init__("rejected", f"ticket {ticket_id}: {reason}", status=status)
        self.reason = reason


@dataclass(frozen=True)
class CallerLookup:
    """`kind`: found | unknown | several. `user_id` when found."""

    kind: str
    user_id: int | None = None
    name: str = ""
    locale: str = ""


@dataclass(frozen=True)
class Ticket:
    id: int
    status: str
    subject: str
    updated_at: str


def phone_query(ani: str) -> str:
    """The search query for a caller number: `phone:` and its digits only."""
    digits = re.sub(r"\D", "", ani)
    if not digits:
        raise ValueError("the caller number has no digits")
    return f"phone:{digits}"


class ZendeskApi:
    """Zendesk calls through one configured connector (auth kind `zendesk`)."""

    def __init__(self, client: ConnectorClient, connector: str) -> None:
        self.client = client
        self.connector = connector

    def lookup_caller(self, ani: str) -> CallerLookup:
        """Who is calling: one user with this phone number, none, or several.
        A withheld or digit-less number is `unknown` without asking Zendesk."""
        if not re.search(r"\d", ani):
            return CallerLookup("unknown")
        response = self.client.request(
            self.connector,
            "GET",
            "/api/v2/users/search.json",
            query={"query": phone_query(ani)},
        )
        users = _list(response.json, "users")
        if not users:
            return CallerLookup("unknown")
        if len(users) > 1:
            return CallerLookup("several")
        user = users[0]
        return CallerLookup(
            "found",
            user_id=int(user["id"]),
            name=str(user.get("name") or ""),
            locale=str(user.get("locale") or ""),
        )

    def latest_unresolved_ticket(self, user_id: int) -> Ticket | None:
        """The user's most recently updated ticket with a status below solved.

        The newest is chosen here, by `updated_at`, over every page read: the sort
        parameters are sent, but Zendesk has been reported to ignore them under cursor
        pagination, so the order of the answer is not relied upon.
        """
        path: str = f"/api/v2/users/{int(user_id)}/tickets/requested.json"
        query: dict[str, str] | None = {
            "sort_by": "updated_at",
            "sort_order": "desc",
            "page[size]": str(PAGE_SIZE),
        }
        best: Ticket | None = None
        for _page in range(MAX_PAGES):
            response = self.client.request(self.connector, "GET", path, query=query)
            for t in _list(response.json, "tickets"):
                if t.get("status") not in UNRESOLVED:
                    continue
                ticket = Ticket(
                    id=int(t["id"]),
                    status=str(t["status"]),
                    subject=str(t.get("subject") or ""),
                    updated_at=str(t.get("updated_at") or ""),
                )
                # ISO 8601 UTC timestamps ("2026-11-05T10:00:00Z") sort as text.
                if best is None or ticket.updated_at > best.updated_at:
                    best = ticket
            body = response.json if isinstance(response.json, dict) else {}
            meta = body.get("meta") or {}
            next_url = (body.get("links") or {}).get("next")
            if not meta.get("has_more") or not next_url:
                break
            path, query = str(next_url), None  # the next link carries the cursor
        return best

    def add_private_comment(self, ticket_id: str | int, body: str) -> None:
        """Add a private (internal) comment; TicketNotEditable when that can never work."""
        try:
            self.client.request(
                self.connector,
                "PUT",
                f"/api/v2/tickets/{int(ticket_id)}.json",
                json_body={"ticket": {"comment": {"body": body, "public": False}}},
            )
        except TicketNotEditable:
            raise
        except ConnectorError as exc:
            reason = not_editable_reason(exc)
            if reason:
                raise TicketNotEditable(reason, int(ticket_id), exc.status) from None
            raise


def not_editable_reason(exc: ConnectorError) -> str:
    """`ticket-closed` / `ticket-not-found` when Zendesk's answer means the update can
    never succeed; "" otherwise."""
    if exc.status == 404:
        return "ticket-not-found"
    if exc.status != 422 or not isinstance(exc.body, dict):
        return ""
    details = exc.body.get("details")
    if not isinstance(details, dict):
        return ""
    for item in details.get("status") or []:
        if isinstance(item, dict) and "closed" in str(item.get("description", "")).lower():
            return "ticket-closed"
    return ""


def _list(document: object, key: str) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        raise ConnectorError("unavailable", f"answer has no {key!r} list")
    items = document.get(key)
    if not isinstance(items, list):
        raise ConnectorError("unavailable", f"answer has no {key!r} list")
    return [i for i in items if isinstance(i, dict)]
