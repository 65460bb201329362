"""The Zendesk Support API calls the caller-aware flow makes (docs/connectors.md).

- Caller lookup: `GET /api/v2/users/search.json?query=phone:<digits>`. Zendesk's own
  guide for telephony integrations searches users by `phone:` with the number's digits
  only (no `+`, spaces or dashes). Search Users has offset pagination only; one page
  tells found / unknown / several apart, which is all a call needs.
- The caller's latest unresolved ticket: `GET /api/v2/users/{id}/tickets/requested.json`
  sorted by `updated_at` descending, with cursor pagination (`page[size]`, follow
  `links.next` while `meta.has_more`): the first ticket whose status is below solved
  (new, open, pending, hold) is the one. A bounded number of pages is read.
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
        """Who is calling: one user with this phone number, none, or several."""
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
        """The user's most recently updated ticket with a status below solved."""
        path: str = f"/api/v2/users/{int(user_id)}/tickets/requested.json"
        query: dict[str, str] | None = {
            "sort_by": "updated_at",
            "sort_order": "desc",
            "page[size]": str(PAGE_SIZE),
        }
        for _page in range(MAX_PAGES):
            response = self.client.request(self.connector, "GET", path, query=query)
            for t in _list(response.json, "tickets"):
                if t.get("status") in UNRESOLVED:
                    return Ticket(
                        id=int(t["id"]),
                        status=str(t["status"]),
                        subject=str(t.get("subject") or ""),
                        updated_at=str(t.get("updated_at") or ""),
                    )
            body = response.json if isinstance(response.json, dict) else {}
            meta = body.get("meta") or {}
            next_url = (body.get("links") or {}).get("next")
            if not meta.get("has_more") or not next_url:
                return None
            path, query = str(next_url), None  # the next link carries the cursor
        return None

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
