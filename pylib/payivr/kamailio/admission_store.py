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

# The admission script's reply is one short RESP line (":1\r\n", or an error).
REPLY_BUFFER = 4096

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
        created = self._evalsha(
            self._admit_sha,
            ADMIT_SCRIPT,
            b"4",
            *(part.encode() for part in write.keys + write.args),
        )
        return AdmissionWrite.CREATED if created == 1 else AdmissionWrite.REPLAYED

    def _evalsha(self, sha: bytes, script: str, *args: bytes) -> int:
        """EVALSHA on this worker's own connection, packed and answered here.

        redis-py's generic command packing and reply parsing run a dozen Python
        functions per call; in a Kamailio worker, whose caches the SIP work between two
        INVITEs has evicted, they cost about 170 us of CPU where the send and the
        receive themselves cost 70 (docs/kamailio.md, "What each step bought"). The
        arguments are bytes already, so packing is one join, and the script answers one
        RESP line: an integer, or an error. On NOSCRIPT (Redis restarted, script cache
        empty) the script is loaded once.
        """
        parts = (b"EVALSHA", sha, *args)
        packed = b"*%d\r\n" % len(parts) + b"".join(
            b"$%d\r\n%s\r\n" % (len(part), part) for part in parts
        )
        # One connection of this worker's own, outside the pool: the pool's per-call
        # lock and readiness poll cost a syscall each, and a worker runs one call at
        # a time anyway. redis-py opens it (address, password, database, Sentinel,
        # timeouts: payivr.store.connect) and reconnects on the first send after a
        # failure. Its health check (a PING once no reply passed its parser for 30 s)
        # now runs every 30 s: one more round trip per worker per 30 s.
        conn = self._conn
        try:
            return self._integer_reply(conn, packed)
        except self._errors.NoScriptError:
            self.client.script_load(script)
            return self._integer_reply(conn, packed)

    def _integer_reply(self, conn: Any, packed: bytes) -> int:
        errors = self._errors
        conn.send_packed_command([packed])
        try:
            line = conn._sock.recv(REPLY_BUFFER)
            while line and not line.endswith(b"\r\n"):
                more = conn._sock.recv(REPLY_BUFFER)
                if not more:
                    break
                line += more
        except TimeoutError:
            conn.disconnect()  # a reply arriving later must not be taken by the next call
            raise errors.TimeoutError("Redis did not answer the admission script") from None
        except OSError as exc:
            conn.disconnect()
            raise errors.ConnectionError(f"admission script: {exc}") from None
        if line.startswith(b":") and line.endswith(b"\r\n"):
            return int(line[1:-2])
        if line.startswith(b"-NOSCRIPT"):
            raise errors.NoScriptError(line[1:-2].decode(errors="replace"))
        # Any other error (READONLY: a Sentinel failover demoted this master; LOADING,
        # BUSY) or a closed connection: drop the connection, so the next call connects
        # afresh (redis-py's Sentinel connection asks the Sentinels for the master then).
        conn.disconnect()
        if line.startswith(b"-"):
            raise errors.ResponseError(line[1:-2].decode(errors="replace"))
        raise errors.ConnectionError("Redis closed the connection during the admission script")

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
