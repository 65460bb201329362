"""The SessionStore of payivr.core.session on Redis (SPEC 5): sessions, events, outbox.

Keys (docs/architecture.md): `payivr:session:<id>` (hash, TTL), `payivr:events`
(stream, capped with MAXLEN ~), `payivr:outbox` (stream, group `workers`).

Every write that changes a session is one MULTI/EXEC transaction together with its
event (and, for the result, its outbox entry), so a reader never sees a state without
its event, nor a result without its callback. The result is a Lua script inside that
transaction, because it is conditional: first writer wins (a result already recorded,
by Kamailio or the watchdog for an orphaned call, is kept). The transactions
themselves are queued by payivr.store.transactions, shared with the ESL application's
async store.

What a session holds is `Session.to_hash()`: the request, state, result and times.
The core's types keep card data out of it (a `Session` cannot hold a SecretDigits);
tests/integration/store scan Redis after a full flow to prove it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from payivr.core.result import PaymentResult
from payivr.core.session import Event, Session, SessionState
from payivr.store import keys
from payivr.store.transactions import (
    DEFAULT_TTL_S,
    add_create_to,
    add_event_to,
    add_result_to,
    add_state_to,
    annotate_call,
    recorded_session,
)

# add_create_to is re-exported: callers that batch a creation know it from here.
__all__ = ["DEFAULT_TTL_S", "RedisSessionStore", "add_create_to"]


class RedisSessionStore:
    """SessionStore on a redis-py client (venv redis-py or Debian's python3-redis 4.3).

    `ttl_s` is the session's lifetime after its last change: every write re-arms it,
    so a long call never loses its session half-way.
    """

    def __init__(
        self, client: Any, ttl_s: int = DEFAULT_TTL_S, events_maxlen: int = keys.EVENTS_MAXLEN
    ) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.events_maxlen = events_maxlen

    def create(self, session: Session, ttl_s: int | None = None) -> None:
        """Store a new session with its TTL and append `session.created`, atomically."""
        pipe = self.client.pipeline(transaction=True)
        add_create_to(pipe, session, ttl_s or self.ttl_s, self.events_maxlen)
        pipe.execute()

    def load(self, session_id: str) -> Session | None:
        """The session, or None if unknown or expired."""
        raw = self.client.hgetall(keys.session_key(session_id))
        if not raw:
            return None
        return Session.from_hash(raw)

    def set_state(
        self, session: Session, state: SessionState, now: datetime, **event_extra: str
    ) -> Session:
        """Change the state and append the state's event (STATE_EVENTS), atomically.

        Callers do not append capture.started / payment.processing / call.returned
        themselves: this does, so a state change and its event cannot part.
        """
        pipe = self.client.pipeline(transaction=True)
        updated = add_state_to(
            pipe, session, state, now, self.ttl_s, self.events_maxlen, **event_extra
        )
        pipe.execute()
        return updated

    def record_result(
        self,
        session: Session,
        result: PaymentResult,
        now: datetime,
        annotations: Mapping[str, str] | None = None,
    ) -> Session:
        """One transaction: result and state `done` on the session, the outbox entry
        (when the request has a callback URL) and the `payment.result` event.

        `annotations` (ANNOTATION_FIELDS: the processor's raw code, the reversal's
        outcome) go on the session hash in the same transaction. First writer wins:
        if a result was recorded already (by Kamailio or the watchdog, for a call
        they took for orphaned; or this very result, by a try whose reply was lost),
        nothing is written and the session returned carries that result."""
        pipe = self.client.pipeline(transaction=True)
        done = add_result_to(
            pipe, session, result, now, self.ttl_s, self.events_maxlen, annotations
        )
        return recorded_session(done, pipe.execute()[-1]) or done

    def annotate(self, session_id: str, **fields: str) -> bool:
        """Add operator-only fields (ANNOTATION_FIELDS) to a stored session.

        For what is learnt after the result was recorded (a late reversal). False when
        the session no longer exists (expired): nothing is written then."""
        call = annotate_call(session_id, fields)
        return True if call is None else bool(self.client.eval(*call))

    def append_event(self, name: Event, session: Session, now: datetime, **fields: str) -> None:
        """Append an event that is not a state change (field.completed, session.closed).

        `fields` are names and verdicts only (`field="pan", valid="false",
        reason="luhn"`), never digits: the caller's types have none to give.
        """
        pipe = self.client.pipeline(transaction=False)
        add_event_to(pipe, name, session, now, self.events_maxlen, **fields)
        pipe.execute()
