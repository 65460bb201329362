"""The session store's transactions, queued on any redis-py pipeline.

`RedisSessionStore` (redis-py, threads; also Debian's python3-redis 4.3 inside
Kamailio) and `AsyncRedisSessionStore` (redis.asyncio, the ESL application) write the
same keys in the same MULTI/EXEC transactions: the functions here queue the commands
on a pipeline of either kind, and only the caller's `execute()` (plain or awaited)
differs. None of them talks to Redis itself.
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
# (payivr.processors.SettledCharge.session_fields()). Session.from_hash ignores them.
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


def annotate_call(session_id: str, fields: Mapping[str, str]) -> tuple[Any, ...] | None:
    """The arguments of the EVAL that adds `fields` (ANNOTATION_FIELDS) to a stored
    session, or None when there is nothing to add. The script answers 0, writing
    nothing, when the session no longer exists."""
    flat = check_annotations(fields)
    if not flat:
        return None
    return (ANNOTATE_SCRIPT, 1, keys.session_key(session_id), *flat)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def second(moment: datetime) -> datetime:
    """`moment` to the second: the hash keeps ISO times to the second, so the Session
    a store method returns equals the one a later load() gives."""
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


def add_session_to(pipeline: Any, session: Session, ttl_s: int) -> None:
    """Queue the write of the whole session hash and its TTL.

    The whole hash, not just the changed fields: if the session had expired
    meanwhile, what gets written back is complete (and expires again)."""
    key = keys.session_key(session.id)
    pipeline.hset(key, mapping=session.to_hash())
    pipeline.expire(key, ttl_s)


def add_create_to(
    pipeline: Any,
    session: Session,
    ttl_s: int = DEFAULT_TTL_S,
    events_maxlen: int = keys.EVENTS_MAXLEN,
) -> None:
    """Queue a session's creation (hash, TTL, `session.created`) on a caller's pipeline.

    For Kamailio's KEMI script too, which may batch it with its own commands; use a
    `pipeline(transaction=True)` so that the three land together.
    """
    add_session_to(pipeline, session, ttl_s)
    add_event_to(pipeline, Event.SESSION_CREATED, session, session.created_at, events_maxlen)


def add_state_to(
    pipeline: Any,
    session: Session,
    state: SessionState,
    now: datetime,
    ttl_s: int,
    events_maxlen: int,
    **event_extra: str,
) -> Session:
    """Queue a state change and the state's event (STATE_EVENTS); returns the session
    as it will be once the transaction has run."""
    updated = session.with_state(state, second(now))
    add_session_to(pipeline, updated, ttl_s)
    add_event_to(pipeline, STATE_EVENTS[state], updated, now, events_maxlen, **event_extra)
    return updated


def done_session(session: Session, result: PaymentResult, now: datetime) -> Session:
    """The session once `result` is recorded on it (state `done`)."""
    return replace(session, state=SessionState.DONE, result=result, updated_at=second(now))


def holds_result(stored: str | bytes | None, result: PaymentResult) -> bool:
    """Whether a session hash's `result` field is `result` already (same event id).

    The guard of record_result: a write retried after a lost reply (it landed, the
    answer did not) must not queue a second outbox entry and event."""
    if not stored:
        return False
    return PaymentResult.from_json(stored).event_id == result.event_id


def add_result_to(
    pipeline: Any,
    session: Session,
    result: PaymentResult,
    now: datetime,
    ttl_s: int,
    events_maxlen: int,
    annotations: Mapping[str, str] | None = None,
) -> Session:
    """Queue the result: state `done` with the result on the session (and
    `annotations`, ANNOTATION_FIELDS), the outbox entry when the request has a
    callback URL, and the `payment.result` event. Returns the `done` session."""
    flat = check_annotations(annotations or {})
    done = done_session(session, result, now)
    add_session_to(pipeline, done, ttl_s)
    if flat:
        pipeline.hset(keys.session_key(session.id), mapping=dict(annotations or {}))
    if session.request.callback_url:
        add_entry_to(
            pipeline,
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
    add_event_to(pipeline, Event.PAYMENT_RESULT, done, now, events_maxlen, **extra)
    return done
