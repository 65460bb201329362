"""Orphaned sessions on a real Redis: first writer wins, deadlines, the watchdog's sweep.

Every way a call ends must give one signed result and one callback (SPEC 7): the ESL
application, Kamailio (the fallback's BYE) and the watchdog may each try to record a
result for the same session; only the first is kept.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis

from payivr.core.admission import Accept
from payivr.core.config import Config, load_config
from payivr.core.orphan import WatchBudget
from payivr.core.processor import ResultCode
from payivr.core.session import Session, SessionState
from payivr.kamailio.admission_store import AdmissionStore
from payivr.store import keys
from payivr.store.async_store import AsyncRedisSessionStore
from payivr.store.connect import redis_from_url
from payivr.store.orphans import OrphanFinaliser
from payivr.store.redis_store import RedisSessionStore
from payivr.watchdog import Watchdog, WatchdogSettings
from tests.conftest import EXAMPLE_CONFIG
from tests.integration.store.storesupport import approved, make_request

pytestmark = pytest.mark.integration
CALLBACK = "https://cb.example.com/pay"


@pytest.fixture()
def client(redis_url: str) -> redis.Redis:
    return redis_from_url(redis_url)


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(EXAMPLE_CONFIG)


def outbox(client: redis.Redis) -> list[dict[str, str]]:
    return [fields for _id, fields in client.xrange(keys.OUTBOX)]


def results(client: redis.Redis) -> list[dict[str, str]]:
    return [f for _id, f in client.xrange(keys.EVENTS) if f["event"] == "payment.result"]


def admit(
    client: redis.Redis, config: Config, budget: WatchBudget | None = None, order: str = "A1001"
) -> Session:
    """A session created as Kamailio creates it (with its watchdog deadline)."""
    request = make_request(CALLBACK, order)
    accept = Accept(request, config.merchants["acme"], replay_key=None, replay_ttl_s=0)
    now = time.time()
    store = AdmissionStore(client, 600, budget)
    session_id = f"s{order.lower()}xxxxxxxxxxxxxxxx"
    store.create_session(accept, session_id, now)
    loaded = RedisSessionStore(client).load(session_id)
    assert loaded is not None
    return loaded


def test_the_second_result_is_not_recorded_and_queues_no_second_callback(
    client: redis.Redis, config: Config
) -> None:
    store = RedisSessionStore(client)
    session = admit(client, config)
    first = approved(session, last4="1111")
    second = dataclasses.replace(approved(session, last4="4444"), event_id="evt_second")
    now = datetime.now(UTC)
    kept = store.record_result(session, first, now)
    again = store.record_result(session, second, now)
    assert kept.result == first and again.result == first
    assert again.state is SessionState.DONE
    loaded = store.load(session.id)
    assert loaded is not None and loaded.result == first
    assert [e["event_id"] for e in outbox(client)] == [first.event_id]
    assert [e["event_id"] for e in results(client)] == [first.event_id]
    assert client.zscore(keys.INFLIGHT, session.id) is None


def test_the_esl_applications_async_store_keeps_the_first_result_too(
    redis_url: str, client: redis.Redis, config: Config
) -> None:
    from payivr.core.config import RedisConfig
    from payivr.store.connect import async_redis_client

    session = admit(client, config)
    orphaned = OrphanFinaliser(client, 600).finalise(session.id, datetime.now(UTC))
    assert orphaned is not None and orphaned.by_us

    async def esl_records() -> Session:
        store = AsyncRedisSessionStore(async_redis_client(RedisConfig(url=redis_url)))
        try:
            return await store.record_result(session, approved(session), datetime.now(UTC))
        finally:
            await store.close()

    returned = asyncio.run(esl_records())
    assert returned.result == orphaned.session.result
    assert returned.result is not None and returned.result.code is ResultCode.FAILED
    assert len(outbox(client)) == 1 and len(results(client)) == 1


def test_a_late_state_write_of_the_loser_does_not_leave_the_session_undone(
    client: redis.Redis, config: Config
) -> None:
    """The ESL application was only slow: the watchdog finalised its session, then the
    application wrote `processing` and finally its own result."""
    store = RedisSessionStore(client)
    session = admit(client, config)
    orphaned = OrphanFinaliser(client, 600).finalise(session.id, datetime.now(UTC))
    assert orphaned is not None
    store.set_state(session, SessionState.PROCESSING, datetime.now(UTC))
    returned = store.record_result(session, approved(session), datetime.now(UTC))
    assert returned.result == orphaned.session.result
    loaded = store.load(session.id)
    assert loaded is not None and loaded.state is SessionState.DONE
    assert loaded.result == orphaned.session.result
    assert len(outbox(client)) == 1 and len(results(client)) == 1


def test_admission_puts_the_session_on_inflight_and_writes_push_its_deadline(
    client: redis.Redis, config: Config
) -> None:
    budget = WatchBudget(prompt_allowance_s=1, answer_allowance_s=2, margin_s=1)
    before = time.time()
    session = admit(client, config, budget)
    step = budget.step_s(config.merchants["acme"])
    assert client.hget(keys.session_key(session.id), keys.WATCHDOG_STEP_FIELD) == str(step)
    deadline = client.zscore(keys.INFLIGHT, session.id)
    assert deadline is not None
    assert before + 2 + step <= deadline <= time.time() + 2 + step
    store = RedisSessionStore(client)
    later = datetime.now(UTC) + timedelta(seconds=100)
    capturing = store.set_state(session, SessionState.CAPTURING, later)
    assert client.zscore(keys.INFLIGHT, session.id) == pytest.approx(later.timestamp() + step)
    store.record_result(capturing, approved(capturing), later)
    assert client.zscore(keys.INFLIGHT, session.id) is None
    # A late write after the result does not put the session back.
    store.set_state(capturing, SessionState.RETURNED, later + timedelta(seconds=5))
    assert client.zscore(keys.INFLIGHT, session.id) is None


def test_the_watchdog_finalises_expired_sessions_only(client: redis.Redis, config: Config) -> None:
    expired = admit(client, config, order="A1")
    alive = admit(client, config, order="A2")
    now = time.time()
    client.zadd(keys.INFLIGHT, {expired.id: now - 1, alive.id: now + 60})
    report = Watchdog(client, config).sweep(now)
    assert report.finalised == [expired.id]
    store = RedisSessionStore(client)
    done = store.load(expired.id)
    assert done is not None and done.state is SessionState.DONE and done.result is not None
    assert (done.result.code, done.result.reason) == (ResultCode.FAILED, "ivr-unavailable")
    assert (done.result.amount, done.result.currency) == (1250, "EUR")
    (entry,) = outbox(client)
    body = json.loads(entry["body"])
    assert (body["session_id"], body["result"], body["reason"]) == (
        expired.id,
        "failed",
        "ivr-unavailable",
    )
    assert entry["url"] == CALLBACK
    assert [e["session"] for e in results(client)] == [expired.id]
    still = store.load(alive.id)
    assert still is not None and still.result is None
    assert client.zscore(keys.INFLIGHT, alive.id) == pytest.approx(now + 60)
    assert client.zscore(keys.INFLIGHT, expired.id) is None
    assert client.zcard(keys.REVERSALS) == 0  # it never reached processing


def test_the_watchdog_keeps_a_result_recorded_meanwhile(
    client: redis.Redis, config: Config
) -> None:
    session = admit(client, config)
    store = RedisSessionStore(client)
    result = approved(session)
    store.record_result(session, result, datetime.now(UTC))
    # As if the ESL application had recorded just after the watchdog read the set.
    client.zadd(keys.INFLIGHT, {session.id: time.time() - 1})
    report = Watchdog(client, config).sweep()
    assert report.already_done == [session.id] and report.finalised == []
    loaded = store.load(session.id)
    assert loaded is not None and loaded.result == result
    assert len(outbox(client)) == 1 and len(results(client)) == 1
    assert client.zcard(keys.INFLIGHT) == 0


def test_a_session_whose_ttl_ran_out_leaves_the_set(client: redis.Redis, config: Config) -> None:
    session = admit(client, config)
    client.delete(keys.session_key(session.id))
    client.zadd(keys.INFLIGHT, {session.id: time.time() - 1})
    report = Watchdog(client, config).sweep()
    assert report.expired == [session.id]
    assert client.zcard(keys.INFLIGHT) == 0 and outbox(client) == []


def test_an_orphan_that_reached_processing_is_reversed_by_idempotency_key(
    client: redis.Redis, config: Config
) -> None:
    session = admit(client, config)
    store = RedisSessionStore(client)
    store.set_state(session, SessionState.PROCESSING, datetime.now(UTC))
    client.zadd(keys.INFLIGHT, {session.id: time.time() - 1})
    reversed_requests = []

    class Recording:
        """acme's configured processor (the sandbox), keeping the reversal requests."""

        def __init__(self) -> None:
            from payivr.processors import build_processor

            self.sandbox = build_processor(config.merchants["acme"])

        def charge(self, request):  # type: ignore[no-untyped-def]
            raise AssertionError("the watchdog never charges")

        def reverse(self, request):  # type: ignore[no-untyped-def]
            reversed_requests.append(request)
            return self.sandbox.reverse(request)

    dog = Watchdog(client, config, WatchdogSettings(), processors={"acme": Recording()})
    report = dog.sweep()
    assert report.finalised == [session.id]
    assert report.reversals == {session.id: "reversed"}
    (request,) = reversed_requests
    assert request.card is None and request.cvv is None
    assert (request.merchant, request.order, request.amount) == ("acme", "A1001", 1250)
    from payivr.core.processor import idempotency_key

    assert request.idempotency_key == idempotency_key("acme", "A1001")
    fields = client.hgetall(keys.session_key(session.id))
    assert fields["reversal"] == "reversed" and fields["reversal_raw_code"] == "00"
    assert client.zcard(keys.REVERSALS) == 0
    assert dog.sweep() == type(report)()  # nothing left to do


def test_two_watchdogs_finalise_a_session_once(client: redis.Redis, config: Config) -> None:
    sessions = [admit(client, config, order=f"B{i}") for i in range(20)]
    client.zadd(keys.INFLIGHT, {s.id: time.time() - 1 for s in sessions})
    settings = WatchdogSettings(batch=7)
    dogs = [Watchdog(client, config, settings), Watchdog(client, config, settings)]
    done: list[str] = []
    for _ in range(3):
        for dog in dogs:
            done += dog.sweep().finalised
    assert sorted(done) == sorted(s.id for s in sessions)
    assert len(outbox(client)) == 20 and len(results(client)) == 20
