"""Retried store writes on a real Redis (issue 11, item 9): only transient errors are
retried, and a result whose reply was lost is not written twice.

`ReplyEater` sits between the client and Redis and, once armed, forwards the next
result write (the RECORD_RESULT_SCRIPT's EVAL; the sync store's wrapped in an EXEC)
to Redis but swallows Redis's reply: the write lands, the client times out, and the
caller retries, as after a network hiccup.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from urllib.parse import urlparse

import pytest
import redis
import redis.asyncio as aioredis

from payivr.execution.store import MAX_PAUSE_S, RETRY_FOR_S, CallStore, with_retries
from payivr.store import keys
from payivr.store.async_store import AsyncRedisSessionStore
from payivr.store.redis_store import RedisSessionStore
from payivr.store.transactions import RECORD_RESULT_SCRIPT
from tests.integration.store.storesupport import approved, make_session
from tests.support.servers import free_port

# The result script's first line: what every result write carries, whatever wraps it.
RESULT_WRITE = RECORD_RESULT_SCRIPT.strip().splitlines()[0].encode()


class ReplyEater:
    def __init__(self, redis_url: str) -> None:
        parsed = urlparse(redis_url)
        self.target = (parsed.hostname or "127.0.0.1", parsed.port or 6379)
        self.port = free_port()
        self.armed = False
        self.swallowed = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _relay(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        sreader, swriter = await asyncio.open_connection(*self.target)
        dropping = False

        async def up() -> None:
            nonlocal dropping
            while data := await creader.read(65536):
                if self.armed and RESULT_WRITE in data:
                    self.armed, dropping = False, True
                swriter.write(data)
                await swriter.drain()

        async def down() -> None:
            while data := await sreader.read(65536):
                if dropping:
                    self.swallowed += 1
                    continue
                cwriter.write(data)
                await cwriter.drain()

        try:
            await asyncio.gather(up(), down())
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            for writer in (cwriter, swriter):
                with contextlib.suppress(Exception):
                    writer.close()


def test_a_result_whose_reply_was_lost_is_written_once(redis_url: str) -> None:
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    session = make_session("https://cb.example.com/pay")
    RedisSessionStore(sync).create(session)
    result = approved(session)

    async def scenario() -> None:
        eater = ReplyEater(redis_url)
        await eater.start()
        client = aioredis.Redis.from_url(eater.url, socket_timeout=0.5, decode_responses=True)
        try:
            store = AsyncRedisSessionStore(client)
            eater.armed = True
            done = await CallStore(store, "test").now(
                store.record_result, session, result, datetime.now(UTC)
            )
            assert done.result == result
            assert eater.swallowed >= 1, "the reply to the first result write was not lost"
        finally:
            await client.aclose()
            await eater.stop()

    asyncio.run(scenario())
    assert len(sync.xrange(keys.OUTBOX)) == 1
    results = [f for _, f in sync.xrange(keys.EVENTS) if f["event"] == "payment.result"]
    assert len(results) == 1
    sync.close()


def test_recording_the_same_result_again_is_a_no_op(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = RedisSessionStore(client)
    session = make_session("https://cb.example.com/pay")
    store.create(session)
    result = approved(session)
    first = store.record_result(session, result, datetime.now(UTC))
    again = store.record_result(session, result, datetime.now(UTC))
    assert again.result == first.result == result
    assert len(client.xrange(keys.OUTBOX)) == 1
    client.close()


def test_only_transient_errors_are_retried(redis_url: str) -> None:
    async def scenario() -> tuple[int, int]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        await client.set("payivr:session:not-a-hash", "x")
        refused = 0

        async def wrong_type() -> None:
            nonlocal refused
            refused += 1
            await client.hset("payivr:session:not-a-hash", mapping={"state": "done"})

        with pytest.raises(redis.ResponseError):
            await with_retries(wrong_type)
        await client.aclose()

        closed = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
        unreachable = 0

        async def nobody_there() -> None:
            nonlocal unreachable
            unreachable += 1
            await closed.ping()

        started = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            await with_retries(nobody_there)
        nonlocal gave_up_after
        gave_up_after = time.monotonic() - started
        await closed.aclose()
        return refused, unreachable

    gave_up_after = 0.0
    refused, unreachable = asyncio.run(scenario())
    assert refused == 1  # WRONGTYPE would fail the same way again
    # An unreachable store is tried again for RETRY_FOR_S (a Sentinel failover), no longer.
    assert unreachable > 3
    assert RETRY_FOR_S - MAX_PAUSE_S - 0.1 <= gave_up_after <= RETRY_FOR_S + 0.5, gave_up_after
