"""The SessionStore of payivr.core.session on Redis (SPEC 5): sessions, events, outbox.

Keys (docs/architecture.md): `payivr:session:<id>` (hash, TTL), `payivr:events`
(stream, capped with MAXLEN ~), `payivr:outbox` (stream, group `workers`).

Every write that changes a session is one MULTI/EXEC transaction together with its
event (and, for the result, its outbox entry), so a reader never sees a state without
its event, nor a result without its callback. Plain MULTI/EXEC rather than Lua for
these: Kamailio's interpreter uses Debian's python3-redis 4.3 and queues `create` in
its own pipeline (`add_create_to`).

What a session holds is `Session.to_hash()`: the request, state, result and times.
The core's types keep card data out of it (a `Session` cannot hold a SecretDigits);
tests/integration/store scan Redis after a full flow to prove it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from payivr.core.result import PaymentResult, callback_body
from payivr.core.session import Event, Session, SessionState, event_fields
from payivr.store import keys
from payivr.store.outbox import add_entry_to, entry_fields

DEFAULT_TTL_S = 3600

# The event each state change appends (SPEC 5); DONE's is written by record_result.
STATE_EVENTS: dict[SessionState, Event] = {
    SessionState.CREATED: Event.SESSION_CREATED,
    SessionState.CAPTURING: Event.CAPTURE_STARTED,
    SessionState.PROCESSING: Event.PAYMENT_PROCESSING,
    SessionState.DONE: Event.PAYMENT_RESULT,
    SessionState.RETURNED: Event.CALL_RETURNED,
}


# HSET on an existing session only: a late annotation must not resurrect an expired
# session as a hash of a few fields that Session.from_hash cannot read.
ANNOTATE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV))
  return 1
end
return 0
"""

# Operator-only fields a caller may add to a session hash beside Session.to_hash()
# (payivr.processors.ChargeOutcome.session_fields()). Session.from_hash ignores them.
ANNOTATION_FIELDS = frozenset({"processor_raw_code", "reversal", "reversal_raw_code"})


def check_annotations(fields: Mapping[str, str]) -> list[str]:
    """Flat ``[field, value, ...]`` for HSET; refuses names that would overwrite the
    session's own fields (only ANNOTATION_FIELDS are accepted)."""
    unknown = sorted(set(fields) - ANNOTATION_FIELDS)
    if unknown:
        raise ValueError(f"not a session annotation: {', '.join(unknown)}")
    flat: list[str] = []
    for name, value in fields.items():
        flat.extend((name, str(value)))
    return flat


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _second(moment: datetime) -> datetime:
    # The hash keeps ISO times to the second; returning the same precision means the
    # Session a method returns equals the one a later load() gives.
    return moment.replace(microsecond=0)


def add_event_to(
    pipeline: Any,
    name: Event,
    session: Session,
    now: datetime,
    maxlen: int = keys.EVENTS_MAXLEN,
    **extra: str,
) -> None:
    """Queue the XADD of one `payivr:events` entry on a caller's pipeline."""
    pipeline.xadd(
        keys.EVENTS, event_fields(name, session, now, **extra), maxlen=maxlen, approximate=True
    )


def add_create_to(
    pipeline: Any,
    session: Session,
    ttl_s: int = DEFAULT_TTL_S,
    events_maxlen: int = keys.EVENTS_MAXLEN,
) -> None:
    """Queue a session's creation (hash, TTL, `session.created`) on a caller's pipeline.

    For Kamailio's KEMI script, which may batch it with its own commands; use a
    `pipeline(transaction=True)` so that the three land together.
    """
    key = keys.session_key(session.id)
    pipeline.hset(key, mapping=session.to_hash())
    pipeline.expire(key, ttl_s)
    add_event_to(pipeline, Event.SESSION_CREATED, session, session.created_at, events_maxlen)


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

    def _write(self, pipe: Any, session: Session) -> None:
        # The whole hash, not just the changed fields: if the session had expired
        # meanwhile, what gets written back is complete (and expires again).
        key = keys.session_key(session.id)
        pipe.hset(key, mapping=session.to_hash())
        pipe.expire(key, self.ttl_s)

    def set_state(
        self, session: Session, state: SessionState, now: datetime, **event_extra: str
    ) -> Session:
        """Change the state and append the state's event (STATE_EVENTS), atomically.

        Callers do not append capture.started / payment.processing / call.returned
        themselves: this does, so a state change and its event cannot part.
        """
        updated = session.with_state(state, _second(now))
        pipe = self.client.pipeline(transaction=True)
        self._write(pipe, updated)
        add_event_to(pipe, STATE_EVENTS[state], updated, now, self.events_maxlen, **event_extra)
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
        outcome) go on the session hash in the same transaction."""
        flat = check_annotations(annotations or {})
        done = replace(session, state=SessionState.DONE, result=result, updated_at=_second(now))
        pipe = self.client.pipeline(transaction=True)
        self._write(pipe, done)
        if flat:
            pipe.hset(keys.session_key(session.id), mapping=dict(annotations or {}))
        if session.request.callback_url:
            add_entry_to(
                pipe,
                entry_fields(
                    event_id=result.event_id,
                    session_id=session.id,
                    merchant=result.merchant,
                    url=session.request.callback_url,
                    body=callback_body(result),
                    result_at_ms=_ms(now),
                ),
            )
        extra = {"result": str(result.code), "event_id": result.event_id}
        if result.reason:
            extra["reason"] = result.reason
        add_event_to(pipe, Event.PAYMENT_RESULT, done, now, self.events_maxlen, **extra)
        pipe.execute()
        return done

    def annotate(self, session_id: str, **fields: str) -> bool:
        """Add operator-only fields (ANNOTATION_FIELDS) to a stored session.

        For what is learnt after the result was recorded (a late reversal). False when
        the session no longer exists (expired): nothing is written then."""
        flat = check_annotations(fields)
        if not flat:
            return True
        return bool(self.client.eval(ANNOTATE_SCRIPT, 1, keys.session_key(session_id), *flat))

    def append_event(self, name: Event, session: Session, now: datetime, **fields: str) -> None:
        """Append an event that is not a state change (field.completed, session.closed).

        `fields` are names and verdicts only (`field="pan", valid="false",
        reason="luhn"`), never digits: the caller's types have none to give.
        """
        pipe = self.client.pipeline(transaction=False)
        add_event_to(pipe, name, session, now, self.events_maxlen, **fields)
        pipe.execute()
