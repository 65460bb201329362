"""The session store for the ESL application, on redis.asyncio.

Same keys, same transactions, same event and outbox entries as
payivr.store.redis_store.RedisSessionStore (it reuses that module's pipeline helpers:
`add_event_to`, `entry_fields`/`add_entry_to`, `STATE_EVENTS`), but awaited on the
event loop instead of a thread pool: with 500 calls in one process, Redis round trips
through threads contended for the GIL with the event loop and put hundreds of
milliseconds on the steps' tail (docs/esl.md, benchmark).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from payivr.core.config import RedisConfig
from payivr.core.result import PaymentResult, callback_body
from payivr.core.session import Event, Session, SessionState
from payivr.store import keys
from payivr.store.outbox import add_entry_to, entry_fields
from payivr.store.redis_store import (
    ANNOTATE_SCRIPT,
    DEFAULT_TTL_S,
    STATE_EVENTS,
    add_event_to,
    check_annotations,
)

SOCKET_TIMEOUT_S = 3.0


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


def _second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


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

    def _write(self, pipe: Any, session: Session) -> None:
        key = keys.session_key(session.id)
        pipe.hset(key, mapping=session.to_hash())
        pipe.expire(key, self.ttl_s)

    async def set_state(
        self, session: Session, state: SessionState, now: datetime, **event_extra: str
    ) -> Session:
        """State change and its event, one transaction."""
        updated = session.with_state(state, _second(now))
        async with self.client.pipeline(transaction=True) as pipe:
            self._write(pipe, updated)
            add_event_to(pipe, STATE_EVENTS[state], updated, now, self.events_maxlen, **event_extra)
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
        transaction."""
        flat = check_annotations(annotations or {})
        done = replace(session, state=SessionState.DONE, result=result, updated_at=_second(now))
        async with self.client.pipeline(transaction=True) as pipe:
            self._write(pipe, done)
            if flat:
                pipe.hset(keys.session_key(session.id), mapping=dict(annotations or {}))
            if session.request.callback_url:
                add_entry_to(
                    pipe,
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
            add_event_to(pipe, Event.PAYMENT_RESULT, done, now, self.events_maxlen, **extra)
            await pipe.execute()
        return done

    async def annotate(self, session_id: str, **fields: str) -> bool:
        """Operator-only fields added after the result (see RedisSessionStore.annotate)."""
        flat = check_annotations(fields)
        if not flat:
            return True
        key = keys.session_key(session_id)
        return bool(await self.client.eval(ANNOTATE_SCRIPT, 1, key, *flat))

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


def async_redis_client(settings: RedisConfig, *, max_connections: int = 64) -> Any:
    """A redis.asyncio client for the configured Redis or Sentinel-monitored master."""
    import redis.asyncio as aioredis

    password = settings.password.value() if settings.password else None
    common: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": SOCKET_TIMEOUT_S,
        "decode_responses": True,
    }
    if settings.sentinel is not None:
        from redis.asyncio.sentinel import Sentinel

        # The Sentinels' own requirepass (services.redis.sentinel.password), if any.
        sentinel_password = settings.sentinel.password
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(settings.sentinel.nodes),
            socket_timeout=SOCKET_TIMEOUT_S,
            sentinel_kwargs={"password": sentinel_password.value()} if sentinel_password else None,
        )
        return sentinel.master_for(settings.sentinel.master, password=password, **common)
    if password:
        common["password"] = password
    return aioredis.Redis.from_url(settings.url, max_connections=max_connections, **common)
