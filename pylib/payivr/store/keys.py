"""Redis key names, in one place (docs/architecture.md lists them)."""

from __future__ import annotations

PREFIX = "payivr:"
EVENTS = "payivr:events"
OUTBOX = "payivr:outbox"
OUTBOX_GROUP = "workers"
OUTBOX_DEAD = "payivr:outbox:dead"
# Sorted set of outbox stream ids scored by the next attempt time (ms since the epoch).
# While an entry is being delivered its score is the end of the worker's lease.
OUTBOX_SCHEDULE = "payivr:outbox:retry"
OUTBOX_STATE_PREFIX = "payivr:outbox:state:"
# Sorted set of the sessions whose result is not recorded yet, scored by the latest
# time (s since the epoch) their call could still be running (payivr.core.orphan).
INFLIGHT = "payivr:inflight"
# Sorted set of orphaned sessions that had reached `processing` (the money may have
# moved), scored by when the watchdog should ask the processor to reverse them.
REVERSALS = "payivr:reversals"
# The session hash field with the watchdog's step (s): how far each write of the ESL
# application pushes the session's deadline on INFLIGHT.
WATCHDOG_STEP_FIELD = "watchdog_step_s"

# The after-call comment outbox (connectors/comments.py): the same machinery as the
# callback outbox (stream, group, schedule, dead stream, per-entry state), its own keys.
COMMENTS = "payivr:comments"
COMMENTS_GROUP = "workers"
COMMENTS_DEAD = "payivr:comments:dead"
COMMENTS_SCHEDULE = "payivr:comments:retry"
COMMENTS_STATE_PREFIX = "payivr:comments:state:"

# Approximate cap of the events stream (XADD MAXLEN ~): reporting reads it soon after
# the fact; the cap bounds memory if no consumer ever runs.
EVENTS_MAXLEN = 100_000


def session_key(session_id: str) -> str:
    """The hash that holds one payment session (SPEC 5)."""
    return f"payivr:session:{session_id}"


def outbox_state_key(entry_id: str) -> str:
    """Attempts and last error of one outbox entry (by its stream id)."""
    return OUTBOX_STATE_PREFIX + entry_id
