"""The Redis side of admitting one call, in a single round trip.

An accepted INVITE must (SPEC 3 and 5): claim its replay key (SET NX EX), create the
session hash with its TTL, append `session.created` to `payivr:events`, and put the
session on `payivr:inflight` with the latest time its call could still be running
(the watchdog finalises it if no result is recorded by then: payivr.core.orphan).
Doing it as one Lua script (payivr.store.admit_write, which a flow's `pay` runs too)
makes it atomic (a replayed request creates nothing) and costs one round trip per
call, which is what keeps Kamailio's Python workers fast.

Works with Debian's python3-redis 4.3 (Kamailio's embedded interpreter) and the venv's.
"""

from __future__ import annotations

import enum
import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from payivr.core.admission import Accept
from payivr.core.orphan import WatchBudget
from payivr.core.session import Event, Session
from payivr.store import keys
from payivr.store.admit_write import ADMIT_SCRIPT, admit_write

if TYPE_CHECKING:
    import redis

# KEYS: session key, events stream, inflight set. ARGV: MAXLEN, session id, event items...
# Used when no FreeSWITCH node took the call after the session was created.
CLOSE_SCRIPT = """
redis.call('ZREM', KEYS[3], ARGV[2])
if redis.call('DEL', KEYS[1]) == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))
end
return 1
"""


class AdmissionWrite(enum.Enum):
    """What `create_session` did: created the session, or wrote nothing (a replay)."""

    CREATED = "created"
    REPLAYED = "replayed"


class AdmissionStore:
    """Creates sessions for accepted calls. One instance per Kamailio worker process."""

    def __init__(
        self, client: redis.Redis, session_ttl_s: int, budget: WatchBudget | None = None
    ) -> None:
        # redis is imported here, in the worker after Kamailio's fork, not at module
        # load in the main process: it imports logging, whose at-fork hooks complain
        # when Kamailio forks without telling Python.
        from redis import exceptions

        self._errors = exceptions
        self.client = client
        self._budget = budget or WatchBudget()
        self._conn: Any = client.connection_pool.make_connection()
        self._ttl = session_ttl_s
        self._admit_sha = hashlib.sha1(ADMIT_SCRIPT.encode()).hexdigest().encode()  # noqa: S324
        self._close = client.register_script(CLOSE_SCRIPT)

    def create_session(self, accept: Accept, session_id: str, now: float) -> AdmissionWrite:
        """Claim the replay key and create the session with its event, atomically.

        Raises redis.RedisError when Redis is unreachable or slow (the caller answers
        503); returns REPLAYED, having created nothing, if the key was already claimed.
        """
        when = datetime.fromtimestamp(int(now), UTC)  # the hash keeps seconds
        session = Session.new(accept.request, when, session_id)
        write = admit_write(
            session,
            accept.merchant,
            now,
            session_ttl_s=self._ttl,
            budget=self._budget,
            replay_key=accept.replay_key,
            replay_ttl_s=accept.replay_ttl_s,
        )
        done = self._evalsha(
            self._admit_sha,
            ADMIT_SCRIPT,
            b"4",
            *(part.encode() for part in write.keys + write.args),
        )
        return AdmissionWrite.CREATED if int(done) == 1 else AdmissionWrite.REPLAYED

    def _evalsha(self, sha: bytes, script: str, *args: bytes) -> Any:
        """EVALSHA on a pooled connection, packing the command here.

        redis-py's generic command packing costs more CPU than everything else this
        call does; the arguments here are already bytes, so packing is one join. On
        NOSCRIPT (Redis restarted, script cache empty) the script is loaded once.
        """
        parts = (b"EVALSHA", sha, *args)
        packed = b"*%d\r\n" % len(parts) + b"".join(
            b"$%d\r\n%s\r\n" % (len(part), part) for part in parts
        )
        # One connection of this worker's own, outside the pool: the pool's per-call
        # lock and readiness poll cost a syscall each, and a worker runs one call at
        # a time anyway. It (re)connects on first send after a failure.
        conn = self._conn
        try:
            conn.send_packed_command([packed])
            return conn.read_response()
        except self._errors.NoScriptError:
            self.client.script_load(script)
            conn.send_packed_command([packed])
            return conn.read_response()
        except (self._errors.ConnectionError, self._errors.TimeoutError):
            conn.disconnect()  # a half-read reply must not be taken by the next call
            raise

    def close_unrouted(
        self, session_id: str, merchant: str, order: str, now: float, reason: str
    ) -> None:
        """Remove a session no FreeSWITCH node took, noting why on the event stream."""
        fields = {
            "event": str(Event.SESSION_CLOSED),
            "session": session_id,
            "merchant": merchant,
            "order": order,
            "at": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "reason": reason,
        }
        items: list[str] = []
        for name, value in fields.items():
            items += (name, value)
        self._close(
            keys=[keys.session_key(session_id), keys.EVENTS, keys.INFLIGHT],
            args=[str(keys.EVENTS_MAXLEN), session_id, *items],
        )
