"""Many calls' writes at once share pipelines (payivr.store.batching), on a real Redis.

Before the batcher each write was its own round trip on its own pooled connection:
1,000 calls at one step needed more connections than the pool had (docs/esl.md).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from payivr.core.session import Event, SessionState
from payivr.store import keys
from payivr.store.async_store import AsyncRedisSessionStore
from payivr.store.redis_store import RedisSessionStore
from tests.integration.store.storesupport import make_session

pytestmark = pytest.mark.integration


def counting_pipelines(client: Any) -> list[int]:
    """Counts the pipelines the client opens (the real ones, sent to the real Redis)."""
    opened = [0]
    real = client.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        opened[0] += 1
        return real(*args, **kwargs)

    client.pipeline = pipeline
    return opened


def test_writes_of_200_calls_at_once_share_a_few_pipelines(redis_url: str) -> None:
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    sessions = [make_session(order=f"B{i}") for i in range(200)]
    for session in sessions:
        RedisSessionStore(sync).create(session)

    async def scenario() -> int:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        opened = counting_pipelines(client)
        store = AsyncRedisSessionStore(client)
        try:
            now = datetime.now(UTC)
            await asyncio.gather(
                *(store.set_state(s, SessionState.CAPTURING, now) for s in sessions)
            )
            loaded = await asyncio.gather(*(store.load(s.id) for s in sessions))
            assert all(s is not None and s.state is SessionState.CAPTURING for s in loaded)
            return opened[0]
        finally:
            await client.aclose()

    pipelines = asyncio.run(scenario())
    assert pipelines <= 8, f"{pipelines} pipelines for 400 writes and reads"
    # Each state change is still its own transaction with its event.
    started = [f for _, f in sync.xrange(keys.EVENTS) if f["event"] == "capture.started"]
    assert len(started) == 200
    sync.close()


def test_one_failing_write_does_not_fail_the_others_in_its_pipeline(redis_url: str) -> None:
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    good, broken = make_session(order="G1"), make_session(order="X1")
    RedisSessionStore(sync).create(good)
    sync.set(keys.session_key(broken.id), "not a hash")  # HSET on it: WRONGTYPE

    async def scenario() -> list[object]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        store = AsyncRedisSessionStore(client)
        try:
            now = datetime.now(UTC)
            return await asyncio.gather(
                store.set_state(good, SessionState.CAPTURING, now),
                store.set_state(broken, SessionState.CAPTURING, now),
                return_exceptions=True,
            )
        finally:
            await client.aclose()

    ok, failed = asyncio.run(scenario())
    assert isinstance(failed, redis.ResponseError)
    assert not isinstance(ok, BaseException)
    assert sync.hget(keys.session_key(good.id), "state") == "capturing"
    sync.close()


def test_a_load_queued_behind_1000_events_is_answered_before_them(redis_url: str) -> None:
    """The spread case's tail (docs/esl.md): a call's awaited write waited for the whole
    backlog of bookkeeping writes queued before it, in one pipeline with them."""
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    waiting = make_session(order="W1")
    RedisSessionStore(sync).create(waiting)
    others = [make_session(order=f"E{i}") for i in range(1000)]

    async def scenario() -> tuple[list[str], list[int]]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        sizes: list[int] = []
        real = client.pipeline

        def pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = real(*args, **kwargs)
            execute = pipe.execute

            async def counted(*a: Any, **k: Any) -> Any:
                sizes.append(len(pipe.command_stack))
                return await execute(*a, **k)

            pipe.execute = counted
            return pipe

        client.pipeline = pipeline
        store = AsyncRedisSessionStore(client)
        answered: list[str] = []

        async def event(session: Any) -> None:
            await store.append_event(Event.SESSION_CLOSED, session, now)
            answered.append("event")

        async def load() -> None:
            loaded = await store.load(waiting.id)
            assert loaded is not None and loaded.id == waiting.id
            answered.append("load")

        try:
            await asyncio.gather(*(event(s) for s in others), load())
            return answered, sizes
        finally:
            await client.aclose()

    now = datetime.now(UTC)
    answered, sizes = asyncio.run(scenario())
    assert len(answered) == 1001
    assert answered.index("load") < 1000, "the load waited for all 1,000 events"
    # The backlog is cut into several pipelines sent together, not one of 1,001 writes.
    assert len(sizes) > 4, sizes
    sync.close()
