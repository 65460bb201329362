"""Creating a payment session on Redis, with its watchdog deadline: one script.

A session is created in two places: Kamailio, when it admits a transferred payment
call (payivr.kamailio.admission_store), and the ESL application, when a flow's `pay`
starts one (payivr.flows.ports). Both run this script with these arguments, so every
session gets the same writes: the replay key claimed (Kamailio only), the session hash
with its TTL and the watchdog's step (`keys.WATCHDOG_STEP_FIELD`, which the ESL
application's writes use to push the deadline), `session.created` on
`payivr:events`, and the session on `payivr:inflight` with its first deadline
(payivr.core.orphan), so the watchdog finalises it if its ESL application dies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from payivr.core.config_types import MerchantConfig
from payivr.core.orphan import WatchBudget
from payivr.core.session import Event, Session, event_fields
from payivr.store import keys

# KEYS: replay key, session key, events stream, inflight set
# ARGV: replay TTL ('0': no replay key to claim), session TTL, events MAXLEN,
#       session hash as a flat JSON list [field, value, ...], event entry likewise,
#       the watchdog deadline (s since the epoch), the session id.
# JSON rather than one argument per item: the client encodes 2 arguments, not ~50,
# which is most of the Python cost of this call in Kamailio's workers.
ADMIT_SCRIPT = """
if ARGV[1] ~= '0' then
  if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
end
redis.call('HSET', KEYS[2], unpack(cjson.decode(ARGV[4])))
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(cjson.decode(ARGV[5])))
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[7])
return 1
"""
NO_REPLAY_KEY = keys.PREFIX + "replay:-"

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True)
class AdmitWrite:
    """The KEYS and ARGV of one ADMIT_SCRIPT run (the script answers 1 when it
    created the session, 0 when the replay key was taken and it wrote nothing)."""

    keys: tuple[str, str, str, str]
    args: tuple[str, ...]


def admit_write(
    session: Session,
    merchant: MerchantConfig,
    now: float,
    *,
    session_ttl_s: int,
    budget: WatchBudget | None = None,
    replay_key: str | None = None,
    replay_ttl_s: int = 0,
    events_maxlen: int = keys.EVENTS_MAXLEN,
) -> AdmitWrite:
    """The script's arguments for a new session of `merchant`, created at `now`."""
    budget = budget or WatchBudget()
    step = budget.step_s(merchant)
    fields = session.to_hash()
    fields[keys.WATCHDOG_STEP_FIELD] = str(step)
    event = event_fields(Event.SESSION_CREATED, session, session.created_at)
    return AdmitWrite(
        keys=(
            replay_key or NO_REPLAY_KEY,
            keys.session_key(session.id),
            keys.EVENTS,
            keys.INFLIGHT,
        ),
        args=(
            str(replay_ttl_s) if replay_key else "0",
            str(session_ttl_s),
            str(events_maxlen),
            _dumps([item for pair in fields.items() for item in pair]),
            _dumps([item for pair in event.items() for item in pair]),
            repr(budget.admission_deadline(now, step)),
            session.id,
        ),
    )
