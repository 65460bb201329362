"""The durable callback outbox in Redis (SPEC 7): a StreamOutbox on the callback keys.

`record_result` XADDs an entry to `payivr:outbox` in the same script that records the
result on the session (payivr.store.transactions.RECORD_RESULT_SCRIPT); the callback
worker delivers it. The life of an entry (adoption, leases, retries, dead entries) is
store/stream_outbox.py's, shared with the comment outbox; docs/callbacks.md has the
picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from payivr.store import keys
from payivr.store.stream_outbox import OutboxKeys, StreamOutbox, now_ms

__all__ = ["ENTRY_FIELDS", "LeasedEntry", "Outbox", "OutboxRow", "now_ms"]

ENTRY_FIELDS = ("event_id", "session_id", "merchant", "url", "body", "result_at_ms")
CALLBACK_KEYS = OutboxKeys(
    stream=keys.OUTBOX,
    group=keys.OUTBOX_GROUP,
    schedule=keys.OUTBOX_SCHEDULE,
    dead=keys.OUTBOX_DEAD,
    state_prefix=keys.OUTBOX_STATE_PREFIX,
)


def entry_fields(
    *,
    event_id: str,
    session_id: str,
    merchant: str,
    url: str,
    body: bytes | str,
    result_at_ms: int,
) -> dict[str, str]:
    """The fields of an outbox stream entry (no secret, no card data: the body is SPEC 7's)."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return {
        "event_id": event_id,
        "session_id": session_id,
        "merchant": merchant,
        "url": url,
        "body": text,
        "result_at_ms": str(result_at_ms),
    }


@dataclass(frozen=True)
class LeasedEntry:
    """An outbox entry a worker holds until `lease_ms` (ms since the epoch)."""

    id: str
    event_id: str
    session_id: str
    merchant: str
    url: str
    body: bytes
    result_at_ms: int
    window_start_ms: int
    attempts: int
    lease_ms: int


@dataclass(frozen=True)
class OutboxRow:
    """One line of `payivr callbacks list`."""

    id: str
    event_id: str
    merchant: str
    url: str
    state: str  # pending | in-flight | retrying | dead
    attempts: int
    next_at_ms: int | None
    last_status: str
    last_error: str
    reason: str = ""


def _parse(entry_id: str, f: dict[str, str], attempts: int, lease_ms: int) -> LeasedEntry:
    result_at = int(f.get("result_at_ms", "0") or 0)
    return LeasedEntry(
        id=entry_id,
        event_id=f.get("event_id", ""),
        session_id=f.get("session_id", ""),
        merchant=f.get("merchant", ""),
        url=f.get("url", ""),
        body=f.get("body", "").encode("utf-8"),
        result_at_ms=result_at,
        window_start_ms=int(f.get("window_start_ms", "") or result_at),
        attempts=attempts,
        lease_ms=lease_ms,
    )


class Outbox(StreamOutbox[LeasedEntry]):
    """The callback outbox; safe to share between threads (redis-py pools sockets)."""

    def __init__(self, client: Any) -> None:
        super().__init__(client, CALLBACK_KEYS, ENTRY_FIELDS, _parse)

    def rows(self) -> list[OutboxRow]:
        """Every callback not yet delivered: pending, in flight, retrying, and dead."""
        return [
            OutboxRow(
                id=r.id,
                event_id=r.fields.get("event_id", ""),
                merchant=r.fields.get("merchant", ""),
                url=r.fields.get("url", ""),
                state=r.state,
                attempts=r.attempts,
                next_at_ms=r.next_at_ms,
                last_status=r.last_status,
                last_error=r.last_error,
                reason=r.reason,
            )
            for r in self.raw_rows()
        ]
