"""PCI (SPEC 10): after full payment flows, no card data anywhere in Redis or callbacks.

The flows drive the real capture plan and sandbox processor with test cards, keep the
session and events in Redis through RedisSessionStore as the ESL application does,
and deliver the callbacks to a real endpoint. Then every key of every type, and every
callback request, is searched for the keyed digits.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import redis

from payivr.core.config import load_config
from payivr.core.plan.commands import Collect, Finish, ProcessPayment
from payivr.core.plan.events import DigitsEntered, ProcessorAnswered
from payivr.core.plan.machine import CapturePlan
from payivr.core.result import build_result
from payivr.core.sandbox import SandboxProcessor
from payivr.core.secrets import SecretDigits
from payivr.core.session import Event, Session, SessionState, new_event_id
from payivr.store.connect import redis_from_url
from payivr.store.redis_store import RedisSessionStore
from tests.integration.callbacks.cbsupport import (
    endpoint_running,
    wait_until,
    worker_thread,
    write_config,
)
from tests.integration.store.storesupport import make_session
from tests.support import pci

pytestmark = pytest.mark.integration

EXPIRY = "1230"
CVV = "737"
# (keys for each Collect in order, expected result)
FLOWS = [
    (["4111111111111111", EXPIRY, CVV], "approved"),
    (["4000000000000002", EXPIRY, CVV], "declined"),
    # Two wrong numbers (Luhn), then a good one: the wrong ones are keyed digits too.
    (["4111111111111112", "5555555555554445", "5555555555554444", EXPIRY, CVV], "approved"),
    (["4000000000009995", EXPIRY, CVV], "declined"),
]


def find_forbidden(text: str) -> list[str]:
    """Card data of these tests found in ``text`` (bounded, so timestamps and ids do
    not match)."""
    return pci.find_card_data(
        text,
        pans=(*pci.SANDBOX_PANS, "4111111111111112", "5555555555554445", "5555555555554444"),
        short=(EXPIRY, CVV),
    )


def dump_redis(client: redis.Redis) -> str:
    """Every key and value in the database, whatever its type, as text."""
    parts: list[str] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == "string":
            value: object = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "stream":
            value = client.xrange(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "set":
            value = client.smembers(key)
        else:
            value = f"<{kind}>"
        parts.append(f"{key} {value!r}")
    return "\n".join(parts)


def run_flow(
    store: RedisSessionStore,
    session: Session,
    keyed: list[str],
    merchant: object,
) -> str:
    plan = CapturePlan(session.request, merchant, date(2026, 11, 21))  # type: ignore[arg-type]
    session = store.set_state(session, SessionState.CAPTURING, datetime.now(UTC))
    keys_left = deque(keyed)
    pending = deque(plan.start())
    code = ""
    while pending:
        command = pending.popleft()
        event = None
        if isinstance(command, Collect):
            event = DigitsEntered(command.field, SecretDigits(keys_left.popleft()), "#")
        elif isinstance(command, ProcessPayment):
            session = store.set_state(session, SessionState.PROCESSING, datetime.now(UTC))
            answer = SandboxProcessor(b"k" * 32).charge(
                command.charge_request(session.request, timeout_s=2)
            )
            event = ProcessorAnswered(answer)
        elif isinstance(command, Finish):
            now = datetime.now(UTC)
            result = build_result(
                session.request,
                session_id=session.id,
                event_id=new_event_id(),
                created_at=session.created_at,
                completed_at=now,
                outcome=command.outcome,
            )
            session = store.record_result(session, result, now)
            code = str(result.code)
        if event is not None:
            pending.extend(plan.handle(event))
            report = plan.last_field
            if report is not None:
                store.append_event(
                    Event.FIELD_COMPLETED,
                    session,
                    datetime.now(UTC),
                    field=str(report.field),
                    valid=str(report.valid).lower(),
                    reason=report.reason or "",
                    digit_count=str(report.digit_count),
                    brand=report.brand or "",
                )
    store.set_state(session, SessionState.RETURNED, datetime.now(UTC))
    return code


def test_scanner_finds_card_data_when_it_is_there(redis_url: str) -> None:
    """The positive control: without it, a clean scan would prove nothing."""
    client = redis_from_url(redis_url)
    client.hset("leak:test", mapping={"note": "card 4111111111111111 exp 1230"})
    client.xadd("leak:stream", {"cvv": CVV})
    dump = dump_redis(client)
    assert pci.find_card_data(dump, pans=("4111111111111111",))
    assert pci.find_card_data(dump, pans=(), short=(EXPIRY,))
    assert pci.find_card_data(dump, pans=(), short=(CVV,))
    # Stream ids, timestamps and channel UUIDs hold digit runs by chance: not card data.
    assert find_forbidden("id 1795265296862-0, call ae07487a-7402-4c78-853d-f173d8d737b5") == []


def test_no_card_data_in_redis_or_callbacks_after_full_flows(
    redis_url: str, tmp_path: Path
) -> None:
    config_path = write_config(tmp_path, redis_url)
    merchant = load_config(config_path).merchants["acme"]
    client = redis_from_url(redis_url)
    store = RedisSessionStore(client)
    with endpoint_running() as endpoint, worker_thread(redis_url, config_path) as worker:
        for i, (keyed, expected) in enumerate(FLOWS):
            session = make_session(endpoint.url, order=f"P{i:04d}")
            session = replace(session, request=replace(session.request, merchant="acme"))
            store.create(session)
            assert run_flow(store, session, keyed, merchant) == expected
        assert wait_until(lambda: worker.metrics.delivered == len(FLOWS))
        callbacks = "\n".join(f"{r.headers!r} {r.body.decode()}" for r in endpoint.received)
    text = dump_redis(client)
    # The flows did write what they should: sessions, events with field verdicts,
    # and the last four digits where SPEC 7 allows them.
    assert text.count("field.completed") >= 9 and '"card_last4":"1111"' in text
    assert '"last4":"4444"' in callbacks
    assert find_forbidden(text) == []
    assert find_forbidden(callbacks) == []
