"""Lua scripts of a stream outbox: every state change of an entry is one script.

Why scripts: a worker's decision (deliver, retry later, park as dead) must change the
schedule, the stream, the consumer group and the per-entry state together, and must
do nothing at all if another worker has taken the entry over in the meantime (its
lease expired). Redis runs a script atomically, so both hold.

Shared conventions (shown for the callback outbox; the comment outbox has its own
keys, store/keys.py, and gets its own copy of the scripts from `scripts_for`):
  KEYS[1] = payivr:outbox (stream)      KEYS[2] = payivr:outbox:retry (schedule zset)
  KEYS[3] = payivr:outbox:dead (stream) where needed
  The per-entry state hash is `payivr:outbox:state:<stream id>` (single Redis, not
  cluster: the key is derived inside the script from the outbox's state prefix).
  A lease is the schedule score of an in-flight entry (ms); a worker proves it still
  owns the entry by passing the lease it was given.
  A leased entry is returned as one JSON string, [id, attempts, [field, value, ...]]:
  one reply element per entry instead of fifteen, which the client parses in C
  (json) rather than element by element (most of a worker's Redis-side CPU).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMMON = """
local function state_key(id) return '@STATE_PREFIX@' .. id end
local function lease_entry(id, deadline)
  local found = redis.call('XRANGE', KEYS[1], id, id)
  if #found == 0 then
    redis.call('ZREM', KEYS[2], id)
    redis.call('DEL', state_key(id))
    return nil
  end
  redis.call('ZADD', KEYS[2], deadline, id)
  redis.call('HSET', state_key(id), 'lease', deadline)
  local attempts = redis.call('HGET', state_key(id), 'attempts') or '0'
  return cjson.encode({id, attempts, found[1][2]})
end
local function owns(id, lease)
  local score = redis.call('ZSCORE', KEYS[2], id)
  return score and tonumber(score) == tonumber(lease)
end
"""

# ARGV: group, lease deadline (ms), ids... -- entries just read (or auto-claimed) from
# the consumer group: acknowledge them (the schedule tracks them from now on) and lease
# them to the caller. An id already on the schedule is not leased again.
ADOPT = (
    _COMMON
    + """
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  redis.call('XACK', KEYS[1], ARGV[1], id)
  if not redis.call('ZSCORE', KEYS[2], id) then
    local e = lease_entry(id, ARGV[2])
    if e then table.insert(out, e) end
  end
end
return out
"""
)

# ARGV: now (ms), lease deadline (ms), count -- lease the entries whose time has come
# (scheduled retries, and in-flight entries whose worker's lease ran out). Returns
# {entries, earliest score left (or false)} so the caller knows how long it may wait.
CLAIM_DUE = (
    _COMMON
    + """
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(due) do
  local e = lease_entry(id, ARGV[2])
  if e then table.insert(out, e) end
end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {out, first[2] or false}
"""
)

# ARGV: now (ms), lease deadline (ms), count, group, consumer -- a busy worker's one
# round trip for work: the due entries (CLAIM_DUE), then, if that left room, new
# entries read from the group (XREADGROUP without BLOCK, allowed in a script) and
# adopted on the spot (ADOPT). Returns {entries, earliest score left (or false)}.
TAKE = (
    _COMMON
    + """
local n = tonumber(ARGV[3])
local out = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, n)
for _, id in ipairs(due) do
  local e = lease_entry(id, ARGV[2])
  if e then table.insert(out, e) end
end
if #out < n then
  local reply = redis.call('XREADGROUP', 'GROUP', ARGV[4], ARGV[5], 'COUNT', n - #out,
                           'STREAMS', KEYS[1], '>')
  if reply then
    for _, message in ipairs(reply[1][2]) do
      local id = message[1]
      redis.call('XACK', KEYS[1], ARGV[4], id)
      if not redis.call('ZSCORE', KEYS[2], id) then
        redis.call('ZADD', KEYS[2], ARGV[2], id)
        redis.call('HSET', state_key(id), 'lease', ARGV[2])
        local attempts = redis.call('HGET', state_key(id), 'attempts') or '0'
        table.insert(out, cjson.encode({id, attempts, message[2]}))
      end
    end
  end
end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {out, first[2] or false}
"""
)

# ARGV: group, ids... -- delivered (2xx): the entries are done. Unconditional: once
# the merchant has one, nobody should send it again, whoever holds the lease.
DELIVERED = (
    _COMMON
    + """
local n = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  redis.call('ZREM', KEYS[2], id)
  redis.call('XACK', KEYS[1], ARGV[1], id)
  redis.call('DEL', state_key(id))
  n = n + redis.call('XDEL', KEYS[1], id)
end
return n
"""
)

# ARGV: id, lease, next attempt (ms), now (ms), last status, last error
RETRY_LATER = (
    _COMMON
    + """
local id = ARGV[1]
if not owns(id, ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], id)
local sk = state_key(id)
redis.call('HINCRBY', sk, 'attempts', 1)
redis.call('HSET', sk, 'next_at_ms', ARGV[3], 'last_attempt_ms', ARGV[4],
           'last_status', ARGV[5], 'last_error', ARGV[6])
redis.call('HDEL', sk, 'lease')
return 1
"""
)

# ARGV: group, id, lease, now (ms), last status, last error, reason, attempted (0/1)
# -- park the entry in the dead stream with everything an operator needs to replay it.
PARK_DEAD = (
    _COMMON
    + """
local id = ARGV[2]
if not owns(id, ARGV[3]) then return 0 end
local found = redis.call('XRANGE', KEYS[1], id, id)
if #found == 0 then return 0 end
local sk = state_key(id)
local attempts = tonumber(redis.call('HGET', sk, 'attempts') or '0') + tonumber(ARGV[8])
local fields = found[1][2]
table.insert(fields, 'attempts'); table.insert(fields, tostring(attempts))
table.insert(fields, 'last_status'); table.insert(fields, ARGV[5])
table.insert(fields, 'last_error'); table.insert(fields, ARGV[6])
table.insert(fields, 'reason'); table.insert(fields, ARGV[7])
table.insert(fields, 'dead_at_ms'); table.insert(fields, ARGV[4])
table.insert(fields, 'outbox_id'); table.insert(fields, id)
redis.call('XADD', KEYS[3], '*', unpack(fields))
redis.call('ZREM', KEYS[2], id)
redis.call('XACK', KEYS[1], ARGV[1], id)
redis.call('XDEL', KEYS[1], id)
redis.call('DEL', sk)
return 1
"""
)

# ARGV: new lease deadline (ms), then id, current lease, id, current lease, ...
# -- a live worker extends the leases of the entries it is still delivering, so that
# a slow endpoint (one that trickles its answer past the lease) never makes another
# worker send the same entry while the first attempt is still going on. Returns the
# ids renewed; an id missing from the answer was lost (its lease had run out).
RENEW = (
    _COMMON
    + """
local out = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if owns(id, ARGV[i + 1]) then
    redis.call('ZADD', KEYS[2], ARGV[1], id)
    redis.call('HSET', state_key(id), 'lease', ARGV[1])
    table.insert(out, id)
  end
end
return out
"""
)

# ARGV: dead id, now (ms) -- put a dead entry back in the outbox with the same event
# id and body and a fresh retry window; returns the new outbox id (or false).
REPLAY_DEAD = """
local found = redis.call('XRANGE', KEYS[3], ARGV[1], ARGV[1])
if #found == 0 then return false end
local keep = {@KEEP_FIELDS@}
local src = found[1][2]
local fields = {}
for i = 1, #src, 2 do
  if keep[src[i]] then table.insert(fields, src[i]); table.insert(fields, src[i + 1]) end
end
table.insert(fields, 'window_start_ms'); table.insert(fields, ARGV[2])
local new_id = redis.call('XADD', KEYS[1], '*', unpack(fields))
redis.call('XDEL', KEYS[3], ARGV[1])
return new_id
"""

# ARGV: id, now (ms) -- an entry waiting for its next retry becomes due now. An entry
# in flight is left alone (returns 0), so a replay never double-sends.
RETRY_NOW = (
    _COMMON
    + """
local id = ARGV[1]
local score = redis.call('ZSCORE', KEYS[2], id)
if not score then return 0 end
local lease = redis.call('HGET', state_key(id), 'lease')
if lease and tonumber(lease) == tonumber(score) then return -1 end
redis.call('ZADD', KEYS[2], ARGV[2], id)
return 1
"""
)


@dataclass(frozen=True)
class OutboxScripts:
    """The scripts of one outbox, with its state-key prefix and entry fields filled in."""

    adopt: str
    claim_due: str
    take: str
    delivered: str
    retry_later: str
    park_dead: str
    renew: str
    replay_dead: str
    retry_now: str


_SAFE = re.compile(r"^[A-Za-z0-9_:.-]+$")


def scripts_for(state_prefix: str, entry_fields: tuple[str, ...]) -> OutboxScripts:
    """The scripts for an outbox whose state hashes are `<state_prefix><id>` and whose
    entries carry `entry_fields` (what a replay of a dead entry copies back)."""
    for name in (state_prefix, *entry_fields):
        if not _SAFE.match(name):
            raise ValueError(f"not usable in a script: {name!r}")
    keep = ", ".join(f"{f}=1" for f in entry_fields)

    def fill(script: str) -> str:
        return script.replace("@STATE_PREFIX@", state_prefix).replace("@KEEP_FIELDS@", keep)

    return OutboxScripts(
        adopt=fill(ADOPT),
        claim_due=fill(CLAIM_DUE),
        take=fill(TAKE),
        delivered=fill(DELIVERED),
        retry_later=fill(RETRY_LATER),
        park_dead=fill(PARK_DEAD),
        renew=fill(RENEW),
        replay_dead=fill(REPLAY_DEAD),
        retry_now=fill(RETRY_NOW),
    )
