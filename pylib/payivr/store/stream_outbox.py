"""A durable outbox in Redis: a stream, a consumer group, a schedule, a dead stream.

One design serves both outboxes payivr has: result callbacks (store/outbox.py) and
after-call CRM comments (connectors/comments.py). Each has its own keys
(`OutboxKeys`) and entry fields; the life of an entry is the same:

1. The producer XADDs it to the stream.
2. A worker reads it with XREADGROUP (the group hands each new entry to exactly one
   worker) and at once *adopts* it: one script acknowledges it in the group and puts
   it on the schedule with a lease (score = now + lease time). A worker that dies
   between the read and the adoption leaves the entry pending in the group; another
   worker takes it with XAUTOCLAIM after `claim_idle`.
3. The worker tries it. Success: the entry is removed (stream, schedule, state).
   Failure: its attempts and last error go to the state hash and its score becomes
   the next attempt time; when retrying is over (or can never work) it moves to the
   dead stream with a reason.
4. Due entries (score <= now) are leased by any worker with one script. An in-flight
   entry's score is its lease's end, so nobody else takes it while its worker lives;
   if that worker dies, the lease runs out and another worker takes it over.

Every change is conditional on the caller still holding the lease, so a worker that
lost its lease (it was too slow) cannot overwrite the new owner's decision.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from payivr.store.outbox_scripts import scripts_for


def now_ms() -> int:
    """Wall-clock milliseconds: schedule scores must mean the same on every host."""
    return int(time.time() * 1000)


def as_text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def pairs(flat: Any) -> dict[str, str]:
    """A Redis field list or mapping as {str: str}."""
    if isinstance(flat, dict):
        return {as_text(k): as_text(v) for k, v in flat.items()}
    items = list(flat)
    return {as_text(items[i]): as_text(items[i + 1]) for i in range(0, len(items), 2)}


@dataclass(frozen=True)
class OutboxKeys:
    stream: str
    group: str
    schedule: str
    dead: str
    state_prefix: str

    def state_key(self, entry_id: str) -> str:
        return self.state_prefix + entry_id


class Leased(Protocol):
    """What the outcome scripts and the worker need of a leased entry."""

    @property
    def id(self) -> str: ...

    @property
    def lease_ms(self) -> int: ...

    @property
    def attempts(self) -> int:
        """Failed attempts recorded so far."""

    @property
    def window_start_ms(self) -> int:
        """When its retry window started (creation, or the last replay)."""


E = TypeVar("E", bound=Leased)

# (stream id, entry fields, attempts so far, lease deadline) -> the typed entry
Parser = Callable[[str, dict[str, str], int, int], E]


@dataclass(frozen=True)
class RawRow:
    """One entry not yet done, as stored: for operator listings."""

    id: str
    fields: Mapping[str, str]
    state: str  # pending | in-flight | retrying | dead
    attempts: int
    next_at_ms: int | None
    last_status: str
    last_error: str
    reason: str = ""


class StreamOutbox(Generic[E]):
    """Operations on one outbox; safe to share between threads (redis-py pools sockets)."""

    def __init__(
        self, client: Any, keys: OutboxKeys, entry_fields: tuple[str, ...], parse: Parser[E]
    ) -> None:
        self.client = client
        self.keys = keys
        self.entry_fields = entry_fields
        self._parse = parse
        s = scripts_for(keys.state_prefix, entry_fields)
        self._adopt = client.register_script(s.adopt)
        self._claim_due = client.register_script(s.claim_due)
        self._take = client.register_script(s.take)
        self._delivered = client.register_script(s.delivered)
        self._retry_later = client.register_script(s.retry_later)
        self._park_dead = client.register_script(s.park_dead)
        self._replay_dead = client.register_script(s.replay_dead)
        self._retry_now = client.register_script(s.retry_now)
        self._renew = client.register_script(s.renew)
        self._keys = [keys.stream, keys.schedule, keys.dead]

    # -- producing ------------------------------------------------------------------
    def add(self, fields: Mapping[str, str], pipeline: Any = None) -> str | None:
        """XADD an entry (on `pipeline` if given: then None, the id comes with EXEC)."""
        unknown = set(fields) - set(self.entry_fields) - {"window_start_ms"}
        if unknown:
            raise ValueError(f"not fields of this outbox: {sorted(unknown)}")
        if pipeline is not None:
            pipeline.xadd(self.keys.stream, dict(fields))
            return None
        return as_text(self.client.xadd(self.keys.stream, dict(fields)))

    # -- setup ----------------------------------------------------------------------
    def ensure_group(self) -> None:
        """Create the stream and group if missing (from id 0: nothing is skipped)."""
        import redis

        try:
            self.client.xgroup_create(self.keys.stream, self.keys.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # -- taking work ----------------------------------------------------------------
    def read_new(self, consumer: str, count: int, block_ms: int, lease_for_ms: int) -> list[E]:
        """New entries handed to this consumer by the group, adopted and leased."""
        reply = self.client.xreadgroup(
            self.keys.group,
            consumer,
            {self.keys.stream: ">"},
            count=count,
            block=block_ms if block_ms > 0 else None,
        )
        ids: list[str] = []
        for _stream, messages in reply or []:
            ids.extend(as_text(mid) for mid, _fields in messages)
        return self._adopt_ids(ids, now_ms(), lease_for_ms)

    def reclaim_stale(self, consumer: str, idle_ms: int, count: int, lease_for_ms: int) -> list[E]:
        """Entries read by a worker that died before adopting them (idle > idle_ms)."""
        reply = self.client.xautoclaim(
            self.keys.stream, self.keys.group, consumer, idle_ms, "0-0", count=count, justid=True
        )
        # redis-py gives the ids alone for JUSTID; older versions the raw triple.
        if (
            reply
            and isinstance(reply[0], (str, bytes))
            and len(reply) == 3
            and isinstance(reply[1], list)
        ):
            reply = reply[1]
        ids = [as_text(i) for i in reply or []]
        return self._adopt_ids(ids, now_ms(), lease_for_ms)

    def _leased(self, raw: list[Any], lease_ms: int) -> list[E]:
        """Entries as the scripts return them: JSON [id, attempts, [field, value, ...]]."""
        out = []
        for item in raw:
            entry_id, attempts, flat = json.loads(item)
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            out.append(self._parse(entry_id, fields, int(attempts or 0), lease_ms))
        return out

    def _adopt_ids(self, ids: list[str], now: int, lease_for_ms: int) -> list[E]:
        if not ids:
            return []
        deadline = now + lease_for_ms
        raw = self._adopt(keys=self._keys, args=[self.keys.group, deadline, *ids])
        return self._leased(raw, deadline)

    def claim_due(self, count: int, now_ms: int, lease_for_ms: int) -> list[E]:
        """Lease up to `count` entries whose next attempt (or expired lease) is due."""
        return self.claim_due_and_next(count, now_ms, lease_for_ms)[0]

    def claim_due_and_next(
        self, count: int, now_ms: int, lease_for_ms: int
    ) -> tuple[list[E], int | None]:
        """claim_due, plus when the earliest entry left on the schedule becomes due."""
        deadline = now_ms + lease_for_ms
        raw, first = self._claim_due(keys=self._keys, args=[now_ms, deadline, count])
        return self._leased(raw, deadline), (int(float(as_text(first))) if first else None)

    def take(
        self, consumer: str, count: int, now_ms: int, lease_for_ms: int
    ) -> tuple[list[E], int | None]:
        """Up to `count` entries in one round trip: due ones first, then new ones from
        the group (adopted and leased at once, never blocking); plus when the earliest
        entry left on the schedule becomes due. Empty: wait with `read_new`."""
        deadline = now_ms + lease_for_ms
        raw, first = self._take(
            keys=self._keys, args=[now_ms, deadline, count, self.keys.group, consumer]
        )
        return self._leased(raw, deadline), (int(float(as_text(first))) if first else None)

        """When the earliest scheduled entry becomes due (None: nothing scheduled)."""
        first = self.client.zrange(self.keys.schedule, 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    # -- outcomes -------------------------------------------------------------------
    def delivered(self, *entries: Leased) -> int:
        """Done for good: remove the entries (one round trip)."""
        if not entries:
            return 0
        ids = [e.id for e in entries]
        return int(self._delivered(keys=self._keys, args=[self.keys.group, *ids]))

    def retry_later(
        self, entry: Leased, next_at_ms: int, now_ms: int, status: str, error: str
    ) -> bool:
        """Record a failed attempt and schedule the next one (False: lease lost)."""
        return bool(
            self._retry_later(
                keys=self._keys, args=[entry.id, entry.lease_ms, next_at_ms, now_ms, status, error]
            )
        )

    def park_dead(
        self,
        entry: Leased,
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
                    self.keys.group,
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
        return {as_text(i) for i in self._renew(keys=self._keys, args=args)}

    # -- operators ------------------------------------------------------------------
    def scan(self, stream: str, batch: int = 500) -> Iterator[tuple[str, dict[str, str]]]:
        start = "-"
        while True:
            chunk = self.client.xrange(stream, min=start, max="+", count=batch)
            for mid, fields in chunk:
                yield as_text(mid), pairs(fields)
            if len(chunk) < batch:
                return
            start = "(" + as_text(chunk[-1][0])

    def raw_rows(self) -> list[RawRow]:
        """Every entry not yet done: pending, in flight, retrying, and dead."""
        out: list[RawRow] = []
        entries = list(self.scan(self.keys.stream))
        details: list[Any] = []
        for start in range(0, len(entries), 500):  # one round trip per 500 entries
            pipe = self.client.pipeline(transaction=False)
            for mid, _f in entries[start : start + 500]:
                pipe.hgetall(self.keys.state_key(mid))
                pipe.zscore(self.keys.schedule, mid)
            details.extend(pipe.execute())
        for i, (mid, f) in enumerate(entries):
            state = pairs(details[2 * i])
            score = details[2 * i + 1]
            attempts = int(state.get("attempts", "0"))
            if score is None:
                kind = "pending"
            elif state.get("lease") and float(state["lease"]) == float(score):
                kind = "in-flight"
            else:
                kind = "retrying" if attempts else "pending"
            out.append(
                RawRow(
                    id=mid,
                    fields=f,
                    state=kind,
                    attempts=attempts,
                    next_at_ms=int(score) if score is not None else None,
                    last_status=state.get("last_status", ""),
                    last_error=state.get("last_error", ""),
                )
            )
        for mid, f in self.scan(self.keys.dead):
            out.append(
                RawRow(
                    id=mid,
                    fields=f,
                    state="dead",
                    attempts=int(f.get("attempts", "0")),
                    next_at_ms=None,
                    last_status=f.get("last_status", ""),
                    last_error=f.get("last_error", ""),
                    reason=f.get("reason", ""),
                )
            )
        return out

    def replay_where(self, field: str, value: str, now_ms: int) -> str:
        """Try the entry whose `field` is `value` again: a dead one goes back to the
        outbox, a retrying one becomes due.

        Returns what happened: `requeued`, `due-now`, `in-flight`, `pending` or `not-found`.
        """
        for mid, f in list(self.scan(self.keys.dead)):
            if f.get(field) == value:
                self._replay_dead(keys=self._keys, args=[mid, now_ms])
                return "requeued"
        for mid, f in self.scan(self.keys.stream):
            if f.get(field) == value:
                done = int(self._retry_now(keys=self._keys, args=[mid, now_ms]))
                return {1: "due-now", -1: "in-flight"}.get(done, "pending")
        return "not-found"

    def replay_all_dead(self, now_ms: int) -> int:
        """Requeue every dead entry; returns how many."""
        n = 0
        for mid, _f in list(self.scan(self.keys.dead)):
            if self._replay_dead(keys=self._keys, args=[mid, now_ms]):
                n += 1
        return n

    def counts(self) -> dict[str, int]:
        """Cheap gauges for metrics: entries in the outbox, scheduled, dead."""
        pipe = self.client.pipeline(transaction=False)
        pipe.xlen(self.keys.stream)
        pipe.zcard(self.keys.schedule)
        pipe.xlen(self.keys.dead)
        outbox, scheduled, dead = pipe.execute()
        return {"outbox": int(outbox), "scheduled": int(scheduled), "dead": int(dead)}
