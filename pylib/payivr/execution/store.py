"""How a call writes to the session store: ordered, retried only when worth it.

Every driver writes through a ``CallStore``: bookkeeping (state changes, field
verdicts) in the background, one write after the other so Redis sees them in order;
the result in the foreground, after the earlier writes have landed. The ESL
application's store is asynchronous (redis.asyncio); agent mode's is the synchronous
one, run in threads (``ThreadedStore``); both offer ``AsyncSessionStore``.

Retries: only errors that say the store could not be reached in time
(``TRANSIENT_ERRORS``), for a few seconds (``RETRY_FOR_S``: a Sentinel failover). A
retried write may already have landed (the reply was lost), so the writes retried
here are idempotent: state
changes rewrite the same hash, and ``record_result`` is a no-op when the session
already holds a result, this one included (first writer wins:
payivr.store.transactions).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from payivr.core.result import PaymentResult
from payivr.core.session import Event, Session, SessionState
from payivr.store.async_store import AsyncSessionStore

log = logging.getLogger("payivr.call")

T = TypeVar("T")
# How long a write keeps trying while the store cannot be reached: longer than a Redis
# Sentinel failover takes (the primary's `down-after-milliseconds`, 5 s by default in
# the redis role, then the election and the promotion, up to 1.6 s more measured:
# docs/deploy.md), so a call that writes during one waits for the new primary instead
# of losing its result.
RETRY_FOR_S = 10.0
RETRY_PAUSE_S = 0.2  # times the attempt number, at most MAX_PAUSE_S
MAX_PAUSE_S = 1.0

# Redis could not be reached, or did not answer in time: worth another try. Anything
# else (a refused command, a bug, WRONGTYPE) would fail the same way again.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
)


async def with_retries(func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """``await func(*args, **kwargs)``, retried on TRANSIENT_ERRORS only, for up to
    RETRY_FOR_S (the last error is raised when the next pause would pass it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RETRY_FOR_S
    attempt = 0
    while True:
        attempt += 1
        try:
            return await func(*args, **kwargs)
        except TRANSIENT_ERRORS as exc:
            pause = min(RETRY_PAUSE_S * attempt, MAX_PAUSE_S)
            if loop.time() + pause > deadline:
                raise
            log.warning("store call failed (%s), retrying", type(exc).__name__)
        await asyncio.sleep(pause)


class CallStore:
    """One call's writes to an AsyncSessionStore (see the module's docstring)."""

    def __init__(self, store: AsyncSessionStore, label: str) -> None:
        self.store = store
        self.label = label
        self._writes: asyncio.Future[None] | None = None

    def later(self, func: Callable[..., Awaitable[object]], *args: Any, **kwargs: Any) -> None:
        """A bookkeeping write off the call's critical path, after the earlier ones.

        A failure is logged (by type: never a value) and does not stop the call.
        """
        previous = self._writes

        async def chained() -> None:
            if previous is not None:
                await previous
            try:
                await with_retries(func, *args, **kwargs)
            except Exception as exc:
                log.error("call %s: store write failed: %s", self.label, type(exc).__name__)

        self._writes = asyncio.ensure_future(chained())

    async def now(self, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """A write the call waits for, after every earlier one has landed."""
        await self.drain()
        return await with_retries(func, *args, **kwargs)

    async def drain(self) -> None:
        """Wait until every write queued so far has been made (or has failed)."""
        if self._writes is not None:
            await self._writes


class ThreadedStore:
    """AsyncSessionStore over the synchronous RedisSessionStore, one thread per call."""

    def __init__(self, store: Any) -> None:
        self.store = store  # payivr.store.redis_store.RedisSessionStore

    async def load(self, session_id: str) -> Session | None:
        session: Session | None = await asyncio.to_thread(self.store.load, session_id)
        return session

    async def set_state(
        self, session: Session, state: SessionState, now: datetime, **event_extra: str
    ) -> Session:
        updated: Session = await asyncio.to_thread(
            self.store.set_state, session, state, now, **event_extra
        )
        return updated

    async def record_result(
        self,
        session: Session,
        result: PaymentResult,
        now: datetime,
        annotations: Mapping[str, str] | None = None,
    ) -> Session:
        done: Session = await asyncio.to_thread(
            self.store.record_result, session, result, now, annotations
        )
        return done

    async def annotate(self, session_id: str, **fields: str) -> bool:
        return bool(await asyncio.to_thread(self.store.annotate, session_id, **fields))

    async def append_event(
        self, name: Event, session: Session, now: datetime, **fields: str
    ) -> None:
        await asyncio.to_thread(self.store.append_event, name, session, now, **fields)
