"""Redis between the agent API and the agent-mode call driver (no card data, ever).

Keys (all with a TTL, `services.agent_api.call_ttl_s`):

* `payivr:agent:call:<call>` (hash): the call: merchant, SIP Call-ID, call reference,
  agent extension, state, current payment;
* `payivr:agent:find:<merchant>:<by>:<value>` (string): the call id, for lookups by
  `call_id`, `ref` or `agent`;
* `payivr:agent:active:<call>` (string): the payment running on the call (SET NX: one
  at a time);
* `payivr:agent:commands:<call>` (stream): API -> driver: `start`, `restart`, `cancel`;
* `payivr:agent:progress:<call>` (stream): driver -> API: progress events (JSON),
  replayable by id for SSE.

`<call>` is the FreeSWITCH Unique-ID of the caller's leg. Streams rather than pub/sub:
a command sent while the driver is busy is not lost, and an agent panel that
reconnects resumes the progress stream from its `Last-Event-ID`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from payivr.core.progress import ProgressEvent

PREFIX = "payivr:agent:"
FIND_KINDS = ("call_id", "ref", "agent")
PROGRESS_MAXLEN = 2000  # per call: many payments' worth of events


def call_key(call: str) -> str:
    return f"{PREFIX}call:{call}"


def find_key(merchant: str, by: str, value: str) -> str:
    return f"{PREFIX}find:{merchant}:{by}:{value}"


def active_key(call: str) -> str:
    return f"{PREFIX}active:{call}"


def commands_key(call: str) -> str:
    return f"{PREFIX}commands:{call}"


def progress_key(call: str) -> str:
    return f"{PREFIX}progress:{call}"


def _s(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class CallInfo:
    """A secure-trunk call as the API shows it (identifiers only, no card data)."""

    call: str
    merchant: str
    call_id: str = ""
    ref: str = ""
    agent: str = ""
    state: str = "bridging"  # bridging | connected | capturing | ended
    payment: str = ""  # the current or last payment's session id
    started_at: str = ""

    def to_hash(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items()}

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> CallInfo:
        h = {_s(k): _s(v) for k, v in raw.items()}
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in h.items() if k in known})

    def public(self) -> dict[str, str]:
        return self.to_hash()


class AgentBus:
    """The agent feature's Redis operations, on a `redis.asyncio` client."""

    def __init__(self, client: Any, ttl_s: int = 14400) -> None:
        self.client = client
        self.ttl_s = ttl_s

    # -- calls -----------------------------------------------------------------------

    async def register_call(self, info: CallInfo) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(call_key(info.call), mapping=info.to_hash())
        pipe.expire(call_key(info.call), self.ttl_s)
        for by, value in (("call_id", info.call_id), ("ref", info.ref), ("agent", info.agent)):
            if value:
                pipe.set(find_key(info.merchant, by, value), info.call, ex=self.ttl_s)
        await pipe.execute()

    async def update_call(self, call: str, **fields: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(call_key(call), mapping=fields)
        pipe.expire(call_key(call), self.ttl_s)
        await pipe.execute()

    async def end_call(self, info: CallInfo) -> None:
        """Mark the call ended; its lookups go at once, its record a little later."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(call_key(info.call), mapping={"state": "ended"})
        pipe.expire(call_key(info.call), 600)
        for by, value in (("call_id", info.call_id), ("ref", info.ref), ("agent", info.agent)):
            if value:
                # Only if it still points at this call: the extension may have a new one.
                key = find_key(info.merchant, by, value)
                if _s(await self.client.get(key) or b"") == info.call:
                    pipe.delete(key)
        pipe.delete(active_key(info.call), commands_key(info.call))
        pipe.expire(progress_key(info.call), 600)
        await pipe.execute()

    async def get_call(self, call: str) -> CallInfo | None:
        raw = await self.client.hgetall(call_key(call))
        return CallInfo.from_hash(raw) if raw else None

    async def find_call(self, merchant: str, by: str, value: str) -> CallInfo | None:
        if by not in FIND_KINDS:
            raise ValueError(f"find by one of {FIND_KINDS}")
        call = await self.client.get(find_key(merchant, by, value))
        if call is None:
            return None
        info = await self.get_call(_s(call))
        return info if info is not None and info.merchant == merchant else None

    async def trunk_session_merchant(self, session_id: str) -> str | None:
        """The merchant of the session Kamailio created for a secure-trunk call.

        Kamailio admits the call (source, signature) and stores `payivr:session:<id>`
        with at least `merchant` (and `mode: agent`): the call is trusted for that
        merchant only. None if there is no such session.
        """
        value = await self.client.hget(f"payivr:session:{session_id}", "merchant")
        return _s(value) if value is not None else None

    # -- one payment at a time per call ---------------------------------------------

    async def claim_payment(self, call: str, payment: str) -> bool:
        return bool(await self.client.set(active_key(call), payment, nx=True, ex=self.ttl_s))

    async def active_payment(self, call: str) -> str | None:
        value = await self.client.get(active_key(call))
        return _s(value) if value is not None else None

    async def release_payment(self, call: str, payment: str) -> None:
        if await self.active_payment(call) == payment:
            await self.client.delete(active_key(call))

    # -- commands (API -> driver) -----------------------------------------------------

    async def send_command(self, call: str, command: str, **fields: str) -> str:
        key = commands_key(call)
        entry = {"command": command, "at": str(int(time.time())), **fields}
        entry_id = await self.client.xadd(key, entry, maxlen=1000, approximate=True)
        await self.client.expire(key, self.ttl_s)
        return _s(entry_id)

    async def read_commands(
        self, call: str, after: str, block_ms: int
    ) -> list[tuple[str, dict[str, str]]]:
        reply = await self.client.xread({commands_key(call): after}, block=block_ms, count=10)
        return [
            (_s(entry_id), {_s(k): _s(v) for k, v in fields.items()})
            for _stream, entries in reply or []
            for entry_id, fields in entries
        ]

    # -- progress (driver -> API) -----------------------------------------------------

    async def publish(self, call: str, event: ProgressEvent) -> str:
        key = progress_key(call)
        data = json.dumps(event.to_dict(), separators=(",", ":"))
        entry_id = await self.client.xadd(
            key, {"data": data}, maxlen=PROGRESS_MAXLEN, approximate=True
        )
        await self.client.expire(key, self.ttl_s)
        return _s(entry_id)

    async def read_progress(
        self, call: str, after: str, block_ms: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """Progress events after stream id `after` (`0` = from the start, `$` = new)."""
        reply = await self.client.xread({progress_key(call): after}, block=block_ms, count=100)
        out: list[tuple[str, dict[str, Any]]] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                data = fields.get(b"data", fields.get("data"))
                out.append((_s(entry_id), json.loads(_s(data))))
        return out

    async def last_progress_id(self, call: str) -> str:
        entries = await self.client.xrevrange(progress_key(call), count=1)
        return _s(entries[0][0]) if entries else "0"
