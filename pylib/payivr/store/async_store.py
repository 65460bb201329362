"""The session store for the ESL application, on redis.asyncio.

Same keys, same transactions, same event and outbox entries as
payivr.store.redis_store.RedisSessionStore: both queue them with
payivr.store.transactions and differ only in awaiting `execute()` on the event loop
instead of calling it in a thread pool: with 500 calls in one process, Redis round
trips through threads contended for the GIL with the event loop and put hundreds of
milliseconds on the steps' tail (docs/esl.md, benchmark).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from payivr.core.result import PaymentResult
from payivr.core.session import Event, Session, SessionState
from payivr.store import keys
from payivr.store.transactions import (
    DEFAULT_TTL_S,
    add_event_to,
    add_result_to,
    add_state_to,
    annotate_call,
    recorded_session,
)


class AsyncSessionStore(Protocol):
    """What the ESL driver needs from the session storage (async SessionStore)."""

    async def load(self, session_id: str) -> Session | None: ...

    async def set_state(
        self, session: Session, state: SessionState, now: datetime, **event_extra: str
    ) -> Session: ...

    async def record_result(
        self,
        session: Session,
        result: PaymentResult,
        now: datetime,
        annotations: Mapping[str, str] | None = None,
    ) -> Session: ...

    async def annotate(self, session_id: str, **fields: str) -> bool: ...

    async def append_event(
        self, name: Event, session: Session, now: datetime, **fields: str
    ) -> None: ...


class AsyncRedisSessionStore:
    """AsyncSessionStore on a redis.asyncio client."""

    def __init__(
        self, client: Any, ttl_s: int = DEFAULT_TTL_S, events_maxlen: int = keys.EVENTS_MAXLEN
    ) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.events_maxlen = events_maxlen

    async def load(self, session_id: str) -> Session | None:
        raw = await self.client.hgetall(keys.session_key(session_id))
        return Session.from_hash(raw) if raw else None

    async def set_state(
        self, session: Session, state: SessionState, now: datetime, **event_extra: str
    ) -> Session:
        """State change and its event, one transaction."""
        async with self.client.pipeline(transaction=True) as pipe:
            updated = add_state_to(
                pipe, session, state, now, self.ttl_s, self.events_maxlen, **event_extra
            )
            await pipe.execute()
        return updated

    async def record_result(
        self,
        session: Session,
        result: PaymentResult,
        now: datetime,
        annotations: Mapping[str, str] | None = None,
    ) -> Session:
        """Result and `done` on the session (with `annotations`: the processor's raw
        code and the reversal's outcome), the outbox entry, `payment.result`: one
        transaction, first writer wins, so a retry after a lost reply writes nothing
        twice (see RedisSessionStore.record_result)."""
        async with self.client.pipeline(transaction=True) as pipe:
            done = add_result_to(
                pipe, session, result, now, self.ttl_s, self.events_maxlen, annotations
            )
            replies = await pipe.execute()
        return recorded_session(done, replies[-1]) or done

    async def annotate(self, session_id: str, **fields: str) -> bool:
        """Operator-only fields added after the result (see RedisSessionStore.annotate)."""
        call = annotate_call(session_id, fields)
        return True if call is None else bool(await self.client.eval(*call))

    async def append_event(
        self, name: Event, session: Session, now: datetime, **fields: str
    ) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            add_event_to(pipe, name, session, now, self.events_maxlen, **fields)
            await pipe.execute()

    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()
