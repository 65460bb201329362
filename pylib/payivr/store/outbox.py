"""The durable callback outbox in Redis (SPEC 7): a stream, a consumer group, a schedule.

Life of an entry (docs/callbacks.md has the picture):

1. `record_result` XADDs it to `payivr:outbox` in the same MULTI/EXEC that records the
   result on the session (see `add_entry_to`).
2. A worker reads it with XREADGROUP (group `workers`): the group hands each new entry
   to exactly one worker. The worker at once *adopts* it: one script acknowledges it
   in the group and puts it on the schedule `payivr:outbox:retry` with a lease (score =
   now + lease time). A worker that dies between the read and the adoption leaves the
   entry pending in the group; another worker takes it with XAUTOCLAIM after
   `claim_idle`.
3. The worker POSTs it. 2xx: the entry is removed (stream, schedule, state). Anything
   else: its attempts and last error go to `payivr:outbox:state:<id>` and its score
   becomes the next attempt time (exponential backoff with jitter); when the retry
   window is over it moves to `payivr:outbox:dead` instead.
4. Due entries (score <= now) are leased by any worker with one script. An in-flight
   entry's score is its lease's end, so nobody else takes it while its worker lives;
   if that worker dies, the lease runs out and another worker takes it over.

Every change is conditional on the caller still holding the lease, so a worker that
lost its lease (it was too slow) cannot overwrite the new owner's decision.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from payivr.store import keys
from payivr.store import outbox_scripts as scripts


def now_ms() -> int:
    """Wall-clock milliseconds: schedule scores must mean the same on every host."""
    return int(time.time() * 1000)


ENTRY_FIELDS = ("event_id", "session_id", "merchant", "url", "body", "result_at_ms")


def _s(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


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


def add_entry_to(pipeline: Any, fields: Mapping[str, str]) -> None:
    """Queue the XADD of an outbox entry on a caller's pipeline/transaction."""
    pipeline.xadd(keys.OUTBOX, dict(fields))


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


def _pairs(flat: Any) -> dict[str, str]:
    if isinstance(flat, dict):
        return {_s(k): _s(v) for k, v in flat.items()}
    items = list(flat)
    return {_s(items[i]): _s(items[i + 1]) for i in range(0, len(items), 2)}


def _leased(raw: list[Any], lease_ms: int) -> list[LeasedEntry]:
    """Entries as the scripts return them: JSON [id, attempts, [field, value, ...]]."""
    out = []
    for item in raw:
        entry_id, attempts, flat = json.loads(item)
        f = dict(zip(flat[::2], flat[1::2], strict=True))
        result_at = int(f.get("result_at_ms", "0") or 0)
        out.append(
            LeasedEntry(
                id=entry_id,
                event_id=f.get("event_id", ""),
                session_id=f.get("session_id", ""),
                merchant=f.get("merchant", ""),
                url=f.get("url", ""),
                body=f.get("body", "").encode("utf-8"),
                result_at_ms=result_at,
                window_start_ms=int(f.get("window_start_ms", "") or result_at),
                attempts=int(attempts or 0),
                lease_ms=lease_ms,
            )
        )
    return out


class Outbox:
    """Operations on the outbox; safe to share between threads (redis-py pools sockets)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._adopt = client.register_script(scripts.ADOPT)
        self._claim_due = client.register_script(scripts.CLAIM_DUE)
        self._take = client.register_script(scripts.TAKE)
        self._delivered = client.register_script(scripts.DELIVERED)
        self._retry_later = client.register_script(scripts.RETRY_LATER)
        self._park_dead = client.register_script(scripts.PARK_DEAD)
        self._replay_dead = client.register_script(scripts.REPLAY_DEAD)
        self._retry_now = client.register_script(scripts.RETRY_NOW)
        self._renew = client.register_script(scripts.RENEW)
        self._keys = [keys.OUTBOX, keys.OUTBOX_SCHEDULE, keys.OUTBOX_DEAD]

    # -- setup ----------------------------------------------------------------------
    def ensure_group(self) -> None:
        """Create the stream and group `workers` if missing (from id 0: nothing is skipped)."""
        import redis

        try:
            self.client.xgroup_create(keys.OUTBOX, keys.OUTBOX_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # -- taking work ----------------------------------------------------------------
    def read_new(
        self, consumer: str, count: int, block_ms: int, lease_for_ms: int
    ) -> list[LeasedEntry]:
        """New entries handed to this consumer by the group, adopted and leased."""
        reply = self.client.xreadgroup(
            keys.OUTBOX_GROUP,
            consumer,
            {keys.OUTBOX: ">"},
            count=count,
            block=block_ms if block_ms > 0 else None,
        )
        ids: list[str] = []
        for _stream, messages in reply or []:
            ids.extend(_s(mid) for mid, _fields in messages)
        return self._adopt_ids(ids, now_ms(), lease_for_ms)

    def reclaim_stale(
        self, consumer: str, idle_ms: int, count: int, lease_for_ms: int
    ) -> list[LeasedEntry]:
        """Entries read by a worker that died before adopting them (idle > idle_ms)."""
        reply = self.client.xautoclaim(
            keys.OUTBOX, keys.OUTBOX_GROUP, consumer, idle_ms, "0-0", count=count, justid=True
        )
        # redis-py gives the ids alone for JUSTID; older versions the raw triple.
        if (
            reply
            and isinstance(reply[0], (str, bytes))
            and len(reply) == 3
            and isinstance(reply[1], list)
        ):
            reply = reply[1]
        ids = [_s(i) for i in reply or []]
        return self._adopt_ids(ids, now_ms(), lease_for_ms)

    def _adopt_ids(self, ids: list[str], now: int, lease_for_ms: int) -> list[LeasedEntry]:
        if not ids:
            return []
        deadline = now + lease_for_ms
        raw = self._adopt(keys=self._keys, args=[keys.OUTBOX_GROUP, deadline, *ids])
        return _leased(raw, deadline)

    def claim_due(self, count: int, now_ms: int, lease_for_ms: int) -> list[LeasedEntry]:
        """Lease up to `count` entries whose next attempt (or expired lease) is due."""
        return self.claim_due_and_next(count, now_ms, lease_for_ms)[0]

    def claim_due_and_next(
        self, count: int, now_ms: int, lease_for_ms: int
    ) -> tuple[list[LeasedEntry], int | None]:
        """claim_due, plus when the earliest entry left on the schedule becomes due."""
        deadline = now_ms + lease_for_ms
        raw, first = self._claim_due(keys=self._keys, args=[now_ms, deadline, count])
        return _leased(raw, deadline), (int(float(_s(first))) if first else None)

    def take(
        self, consumer: str, count: int, now_ms: int, lease_for_ms: int
    ) -> tuple[list[LeasedEntry], int | None]:
        """Up to `count` entries in one round trip: due ones first, then new ones from
        the group (adopted and leased at once, never blocking); plus when the earliest
        entry left on the schedule becomes due. Empty: wait with `read_new`."""
        deadline = now_ms + lease_for_ms
        raw, first = self._take(
            keys=self._keys, args=[now_ms, deadline, count, keys.OUTBOX_GROUP, consumer]
        )
        return _leased(raw, deadline), (int(float(_s(first))) if first else None)

    def next_due_ms(self) -> int | None:
        """When the earliest scheduled entry becomes due (None: nothing scheduled)."""
        first = self.client.zrange(keys.OUTBOX_SCHEDULE, 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    # -- outcomes -------------------------------------------------------------------
    def delivered(self, *entries: LeasedEntry) -> int:
        """The endpoint answered 2xx: remove the entries for good (one round trip)."""
        if not entries:
            return 0
        ids = [e.id for e in entries]
        return int(self._delivered(keys=self._keys, args=[keys.OUTBOX_GROUP, *ids]))

    def retry_later(
        self, entry: LeasedEntry, next_at_ms: int, now_ms: int, status: str, error: str
    ) -> bool:
        """Record a failed attempt and schedule the next one (False: lease lost)."""
        return bool(
            self._retry_later(
                keys=self._keys, args=[entry.id, entry.lease_ms, next_at_ms, now_ms, status, error]
            )
        )

    def park_dead(
        self,
        entry: LeasedEntry,
        now_ms: int,
        status: str,
        error: str,
        reason: str,
        *,
        attempted: bool = True,
    ) -> bool:
        """Move the entry to the dead stream with its last status, error and reason."""
        return bool(
            self._park_dead(
                keys=self._keys,
                args=[
                    keys.OUTBOX_GROUP,
                    entry.id,
                    entry.lease_ms,
                    now_ms,
                    status,
                    error,
                    reason,
                    1 if attempted else 0,
                ],
            )
        )

    def renew(self, leases: Mapping[str, int], new_deadline_ms: int) -> set[str]:
        """Extend the leases {entry id: current lease} to `new_deadline_ms`; returns
        the ids renewed (the others are no longer this worker's)."""
        if not leases:
            return set()
        args: list[object] = [new_deadline_ms]
        for entry_id, lease in leases.items():
            args += [entry_id, lease]
        return {_s(i) for i in self._renew(keys=self._keys, args=args)}

    # -- operators ------------------------------------------------------------------
    def _scan(self, stream: str, batch: int = 500) -> Iterator[tuple[str, dict[str, str]]]:
        start = "-"
        while True:
            chunk = self.client.xrange(stream, min=start, max="+", count=batch)
            for mid, fields in chunk:
                yield _s(mid), _pairs(fields)
            if len(chunk) < batch:
                return
            start = "(" + _s(chunk[-1][0])

    def rows(self) -> list[OutboxRow]:
        """Every entry not yet delivered: pending, in flight, retrying, and dead."""
        out: list[OutboxRow] = []
        entries = list(self._scan(keys.OUTBOX))
        details: list[Any] = []
        for start in range(0, len(entries), 500):  # one round trip per 500 entries
            pipe = self.client.pipeline(transaction=False)
            for mid, _f in entries[start : start + 500]:
                pipe.hgetall(keys.outbox_state_key(mid))
                pipe.zscore(keys.OUTBOX_SCHEDULE, mid)
            details.extend(pipe.execute())
        for i, (mid, f) in enumerate(entries):
            state = _pairs(details[2 * i])
            score = details[2 * i + 1]
            attempts = int(state.get("attempts", "0"))
            if score is None:
                kind = "pending"
            elif state.get("lease") and float(state["lease"]) == float(score):
                kind = "in-flight"
            else:
                kind = "retrying" if attempts else "pending"
            out.append(
                OutboxRow(
                    id=mid,
                    event_id=f.get("event_id", ""),
                    merchant=f.get("merchant", ""),
                    url=f.get("url", ""),
                    state=kind,
                    attempts=attempts,
                    next_at_ms=int(score) if score is not None else None,
                    last_status=state.get("last_status", ""),
                    last_error=state.get("last_error", ""),
                )
            )
        for mid, f in self._scan(keys.OUTBOX_DEAD):
            out.append(
                OutboxRow(
                    id=mid,
                    event_id=f.get("event_id", ""),
                    merchant=f.get("merchant", ""),
                    url=f.get("url", ""),
                    state="dead",
                    attempts=int(f.get("attempts", "0")),
                    next_at_ms=None,
                    last_status=f.get("last_status", ""),
                    last_error=f.get("last_error", ""),
                    reason=f.get("reason", ""),
                )
            )
        return out

    def replay(self, event_id: str, now_ms: int) -> str:
        """Send an entry again: dead ones go back to the outbox, retrying ones become due.

        Returns what happened: `requeued`, `due-now`, `in-flight` or `not-found`.
        """
        for mid, f in list(self._scan(keys.OUTBOX_DEAD)):
            if f.get("event_id") == event_id:
                self._replay_dead(keys=self._keys, args=[mid, now_ms])
                return "requeued"
        for mid, f in self._scan(keys.OUTBOX):
            if f.get("event_id") == event_id:
                done = int(self._retry_now(keys=self._keys, args=[mid, now_ms]))
                return {1: "due-now", -1: "in-flight"}.get(done, "pending")
        return "not-found"

    def replay_all_dead(self, now_ms: int) -> int:
        """Requeue every dead entry; returns how many."""
        n = 0
        for mid, _f in list(self._scan(keys.OUTBOX_DEAD)):
            if self._replay_dead(keys=self._keys, args=[mid, now_ms]):
                n += 1
        return n

    def counts(self) -> dict[str, int]:
        """Cheap gauges for metrics: entries in the outbox, scheduled, dead."""
        pipe = self.client.pipeline(transaction=False)
        pipe.xlen(keys.OUTBOX)
        pipe.zcard(keys.OUTBOX_SCHEDULE)
        pipe.xlen(keys.OUTBOX_DEAD)
        outbox, scheduled, dead = pipe.execute()
        return {"outbox": int(outbox), "scheduled": int(scheduled), "dead": int(dead)}
