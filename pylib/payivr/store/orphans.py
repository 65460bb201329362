"""Finishing a session whose ESL application is gone (payivr.core.orphan), on Redis.

Kamailio (on the dialplan fallback's BYE) and the watchdog (for a deadline that
passed) both call `OrphanFinaliser.finalise`: it reads the session, builds the
`failed` / `ivr-unavailable` result and records it with the ESL application's own
transaction (payivr.store.transactions.RECORD_RESULT_SCRIPT), first writer wins: if a
result was recorded meanwhile, that one is kept and returned, and nothing else is
written. The session's state is checked inside the script, so a session that had
reached `processing` is queued for a reversal in the same atomic step.

Works with Debian's python3-redis 4.3 (Kamailio's embedded interpreter) and the venv's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payivr.core.orphan import ORPHAN_REASON, orphan_result
from payivr.core.reasons import Reason
from payivr.core.session import Session, new_event_id
from payivr.store import keys
from payivr.store.transactions import (
    RECORD_RESULT_SCRIPT,
    record_result_call,
    recorded_session,
)


@dataclass(frozen=True)
class Finalised:
    """A session with its result. `by_us`: this call recorded it (False: the result
    was there already, from the ESL application or another finaliser)."""

    session: Session
    by_us: bool


class OrphanFinaliser:
    """Records the orphan result of sessions; one per process (thread-safe client)."""

    def __init__(self, client: Any, ttl_s: int, events_maxlen: int = keys.EVENTS_MAXLEN) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.events_maxlen = events_maxlen
        self._record = client.register_script(RECORD_RESULT_SCRIPT)

    def finalise(
        self, session_id: str, now: datetime, reason: Reason = ORPHAN_REASON
    ) -> Finalised | None:
        """The session's result, recorded now as `failed`/`reason` unless it had one.

        None when the session no longer exists (its TTL ran out): there is nothing to
        report then, and it leaves `payivr:inflight`. Raises redis.RedisError when
        Redis is unreachable (the caller leaves the session for a later attempt).
        """
        raw = self.client.hgetall(keys.session_key(session_id))
        if not raw:
            self.client.zrem(keys.INFLIGHT, session_id)
            return None
        session = Session.from_hash(raw)
        if session.result is not None:
            self.client.zrem(keys.INFLIGHT, session_id)
            return Finalised(session, by_us=False)
        result = orphan_result(session, now, new_event_id(), reason)
        done, script_keys, args = record_result_call(
            session, result, now, self.ttl_s, self.events_maxlen, orphan=True
        )
        recorded = recorded_session(done, self._record(keys=script_keys, args=args))
        if recorded is None:
            return None
        return Finalised(recorded, by_us=recorded.result == result)
