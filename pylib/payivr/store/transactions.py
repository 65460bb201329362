"""The session store's transactions, queued on any redis-py pipeline.

`RedisSessionStore` (redis-py, threads; also Debian's python3-redis 4.3 inside
Kamailio) and `AsyncRedisSessionStore` (redis.asyncio, the ESL application) write the
same keys in the same MULTI/EXEC transactions: the functions here queue the commands
on a pipeline of either kind, and only the caller's `execute()` (plain or awaited)
differs. None of them talks to Redis itself. The result is one Lua script
(RECORD_RESULT_SCRIPT: first writer wins), shared with payivr.store.orphans.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from payivr.core.result import PaymentResult, callback_body
from payivr.core.session import Event, Session, SessionState, event_fields
from payivr.store import keys
from payivr.store.outbox import entry_fields

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

# The result, first writer wins (SPEC 7: one result and one callback per session).
# The ESL application, Kamailio (on the dialplan fallback's BYE) and the watchdog may
# each try to record one; whoever comes first is the session's result and the others
# write nothing: no second outbox entry, no second `payment.result`. A retry of the
# same write (a timeout after it had landed) is answered the same way.
# KEYS: session, outbox, events, inflight, reversals
# ARGV: 1 session TTL, 2 events MAXLEN, 3 the `done` session hash, 4 annotations,
#       5 the outbox entry ([] for none), 6 the event (each a flat JSON list
#       [field, value, ...]), 7 session id, 8 'orphan' or 'call', 9 now (s)
# An 'orphan' write (Kamailio, watchdog) needs the session to exist and queues a
# reversal when it had reached `processing`: the processor may have charged.
# Returns {1} (recorded), {0, <the recorded result JSON>} or {-1} (no session).
RECORD_RESULT_SCRIPT = """
local recorded = redis.call('HGET', KEYS[1], 'result')
if recorded then
  -- A late state write of a writer that lost may have put the state back.
  local state = redis.call('HGET', KEYS[1], 'state')
  if state ~= 'done' and state ~= 'returned' then
    redis.call('HSET', KEYS[1], 'state', 'done')
  end
  redis.call('ZREM', KEYS[4], ARGV[7])
  return {0, recorded}
end
if ARGV[8] == 'orphan' then
  local state = redis.call('HGET', KEYS[1], 'state')
  if not state then
    redis.call('ZREM', KEYS[4], ARGV[7])
    return {-1}
  end
  if state == 'processing' then redis.call('ZADD', KEYS[5], ARGV[9], ARGV[7]) end
end
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[3])))
local annotations = cjson.decode(ARGV[4])
if #annotations > 0 then redis.call('HSET', KEYS[1], unpack(annotations)) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
local entry = cjson.decode(ARGV[5])
if #entry > 0 then redis.call('XADD', KEYS[2], '*', unpack(entry)) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', unpack(cjson.decode(ARGV[6])))
redis.call('ZREM', KEYS[4], ARGV[7])
return {1}
"""

# A sign of life of the call: its deadline on `payivr:inflight` moves to now + the
# session's watchdog step (written by Kamailio at admission). XX: a session whose
# result is recorded (or that never was on the set) is not added back.
# KEYS: session, inflight. ARGV: now (s), session id, the step's hash field.
HEARTBEAT_SCRIPT = """
local step = redis.call('HGET', KEYS[1], ARGV[3])
if step then
  redis.call('ZADD', KEYS[2], 'XX', 'GT', tonumber(ARGV[1]) + tonumber(step), ARGV[2])
end
return 0
"""

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _flat(fields: Mapping[str, str]) -> str:
    return _dumps([item for pair in fields.items() for item in pair])


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
    """Queue the XADD of one `payivr:events` entry on a caller's pipeline, and the
    heartbeat that tells the watchdog the call is alive (HEARTBEAT_SCRIPT)."""
    pipeline.xadd(
        keys.EVENTS, event_fields(name, session, now, **extra), maxlen=maxlen, approximate=True
    )
    pipeline.eval(
        HEARTBEAT_SCRIPT,
        2,
        keys.session_key(session.id),
        keys.INFLIGHT,
        str(now.timestamp()),
        session.id,
        keys.WATCHDOG_STEP_FIELD,
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


def record_result_call(
    session: Session,
    result: PaymentResult,
    now: datetime,
    ttl_s: int,
    events_maxlen: int,
    annotations: Mapping[str, str] | None = None,
    *,
    orphan: bool = False,
) -> tuple[Session, list[str], list[str]]:
    """The `done` session and the KEYS and ARGV of RECORD_RESULT_SCRIPT for it.

    `orphan`: written by Kamailio or the watchdog for a session whose ESL application
    is gone (see the script)."""
    flat = check_annotations(annotations or {})
    done = replace(session, state=SessionState.DONE, result=result, updated_at=second(now))
    entry: dict[str, str] = {}
    if session.request.callback_url:
        entry = entry_fields(
            event_id=result.event_id,
            session_id=session.id,
            merchant=result.merchant,
            url=session.request.callback_url,
            body=callback_body(result),
            result_at_ms=_ms(now),
        )
    extra = {"result": str(result.code), "event_id": result.event_id}
    if result.reason:
        extra["reason"] = result.reason
    event = event_fields(Event.PAYMENT_RESULT, done, now, **extra)
    script_keys = [
        keys.session_key(session.id),
        keys.OUTBOX,
        keys.EVENTS,
        keys.INFLIGHT,
        keys.REVERSALS,
    ]
    args = [
        str(ttl_s),
        str(events_maxlen),
        _flat(done.to_hash()),
        _dumps(flat),
        _flat(entry),
        _flat(event),
        session.id,
        "orphan" if orphan else "call",
        str(int(now.timestamp())),
    ]
    return done, script_keys, args


def recorded_session(done: Session, reply: Any) -> Session | None:
    """The session as Redis holds it after RECORD_RESULT_SCRIPT answered `reply`:
    `done` when this write was recorded, `done` with the first writer's result when
    one was there already, None when an orphan write found no session."""
    status = int(reply[0])
    if status == 1:
        return done
    if status == 0:
        first = reply[1].decode() if isinstance(reply[1], bytes) else str(reply[1])
        return replace(done, result=PaymentResult.from_json(first))
    return None


def add_result_to(
    pipeline: Any,
    session: Session,
    result: PaymentResult,
    now: datetime,
    ttl_s: int,
    events_maxlen: int,
    annotations: Mapping[str, str] | None = None,
) -> Session:
    """Queue the result, first writer wins (RECORD_RESULT_SCRIPT): state `done` with
    the result on the session (and `annotations`, ANNOTATION_FIELDS), the outbox
    entry when the request has a callback URL, and the `payment.result` event.
    Returns the `done` session as this write would make it: pass the script's reply
    to `recorded_session` for the session as recorded."""
    done, script_keys, args = record_result_call(
        session, result, now, ttl_s, events_maxlen, annotations
    )
    pipeline.eval(RECORD_RESULT_SCRIPT, len(script_keys), *script_keys, *args)
    return done
