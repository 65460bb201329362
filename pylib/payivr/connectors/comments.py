"""Durable after-call comments on Zendesk tickets (docs/connectors.md).

A flow's after-hang-up handler calls `CommentOutbox.enqueue(...)`: one XADD to the
comment outbox (`payivr:comments`), which is the callback outbox's design with its own
keys (store/stream_outbox.py). The comment worker then adds the comment as a private
note (`PUT /api/v2/tickets/{id}.json`), retrying with backoff while Zendesk is down,
slow or rate-limiting, until the retry window ends; so a comment is not lost when
Zendesk is away at hang-up time. A ticket that can no longer be edited (closed: 422;
deleted: 404) is parked dead at once with that reason, never retried.

The body is the flow's summary (entry point, menu choice, wait, outcome). It is never
supposed to hold card data; as a second line of defence any PAN-like digit run is
masked before the comment is stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from payivr.callbacks.metrics import Metrics
from payivr.callbacks.outbox_worker import DeliveryVerdict, OutboxWorker, WorkerSettings
from payivr.connectors.client import ConnectorClient, ConnectorError
from payivr.connectors.zendesk import TicketNotEditable, ZendeskApi
from payivr.core.logfilter import mask_digits
from payivr.store import keys
from payivr.store.stream_outbox import OutboxKeys, StreamOutbox, now_ms

COMMENT_FIELDS = ("comment_id", "call_id", "connector", "ticket_id", "body", "created_at_ms")
COMMENT_KEYS = OutboxKeys(
    stream=keys.COMMENTS,
    group=keys.COMMENTS_GROUP,
    schedule=keys.COMMENTS_SCHEDULE,
    dead=keys.COMMENTS_DEAD,
    state_prefix=keys.COMMENTS_STATE_PREFIX,
)
MAX_BODY_CHARS = 8000


@dataclass(frozen=True)
class LeasedComment:
    """A comment a worker holds until `lease_ms` (ms since the epoch)."""

    id: str
    comment_id: str
    call_id: str
    connector: str
    ticket_id: str
    body: str
    created_at_ms: int
    window_start_ms: int
    attempts: int
    lease_ms: int


def _parse(entry_id: str, f: dict[str, str], attempts: int, lease_ms: int) -> LeasedComment:
    created = int(f.get("created_at_ms", "0") or 0)
    return LeasedComment(
        id=entry_id,
        comment_id=f.get("comment_id", ""),
        call_id=f.get("call_id", ""),
        connector=f.get("connector", ""),
        ticket_id=f.get("ticket_id", ""),
        body=f.get("body", ""),
        created_at_ms=created,
        window_start_ms=int(f.get("window_start_ms", "") or created),
        attempts=attempts,
        lease_ms=lease_ms,
    )


class CommentOutbox(StreamOutbox[LeasedComment]):
    """The comment outbox; safe to share between threads."""

    def __init__(self, client: Any) -> None:
        super().__init__(client, COMMENT_KEYS, COMMENT_FIELDS, _parse)

    def enqueue(self, connector: str, ticket_id: str, body: str, *, call_id: str) -> str:
        """Store a comment for delivery; returns its comment id (stable across retries)."""
        if not str(ticket_id).isdigit():
            raise ValueError("ticket_id must be a Zendesk ticket number")
        if not body.strip():
            raise ValueError("an empty comment")
        comment_id = uuid.uuid4().hex
        self.add(
            {
                "comment_id": comment_id,
                "call_id": call_id,
                "connector": connector,
                "ticket_id": str(ticket_id),
                "body": mask_digits(body[:MAX_BODY_CHARS]),
                "created_at_ms": str(now_ms()),
            }
        )
        return comment_id


def comment_worker_settings(consumer: str = "", retry_for_s: float = 86_400.0) -> WorkerSettings:
    """Production tuning: a few threads (comments are few), a patient backoff."""
    return WorkerSettings(
        consumer=consumer,
        threads=4,
        retry_for_s=retry_for_s,
        backoff_base_s=5.0,
        backoff_max_s=900.0,
        # An attempt is bounded by the connector's overall timeout; 60 s is ample.
        lease_s=60.0,
    )


class CommentWorker(OutboxWorker[LeasedComment]):
    """Adds queued comments to their tickets; runs until `stop()`."""

    what = "comment"

    def __init__(
        self,
        outbox: CommentOutbox,
        client: ConnectorClient,
        settings: WorkerSettings,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(outbox, settings, metrics)
        self.client = client
        self._apis: Mapping[str, ZendeskApi] = {
            name: ZendeskApi(client, name) for name in client.names()
        }

    def describe(self, entry: LeasedComment) -> str:
        return f"{entry.comment_id} (ticket {entry.ticket_id}, call {entry.call_id})"

    def delivered_latency_s(self, entry: LeasedComment, now_ms: int) -> float | None:
        if entry.window_start_ms != entry.created_at_ms:
            return None
        return max(now_ms - entry.created_at_ms, 0) / 1000.0

    def attempt(self, entry: LeasedComment) -> DeliveryVerdict:
        api = self._apis.get(entry.connector)
        if api is None:
            return DeliveryVerdict(
                "dead",
                error=f"connector {entry.connector!r} is not configured",
                reason="unknown-connector",
                attempted=False,
            )
        try:
            api.add_private_comment(entry.ticket_id, entry.body)
        except TicketNotEditable as exc:
            return DeliveryVerdict(
                "dead",
                status=str(exc.status or ""),
                error=str(exc),
                reason=exc.reason,
            )
        except ConnectorError as exc:
            return _failed(exc)
        return DeliveryVerdict("delivered", status="200")


def _failed(exc: ConnectorError) -> DeliveryVerdict:
    status = str(exc.status or "")
    if exc.kind == "rejected" and exc.status not in (401, 403):
        # The request itself is wrong (400, 422 other than a closed ticket): sending
        # it again cannot help. 401/403 are retried: a token being rotated.
        return DeliveryVerdict("dead", status=status, error=str(exc), reason="rejected")
    not_before = 0
    if exc.retry_after_s is not None:
        not_before = now_ms() + int(exc.retry_after_s * 1000)
    return DeliveryVerdict("retry", status=status, error=str(exc), not_before_ms=not_before)
