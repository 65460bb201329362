"""Outbox.take: the busy worker's single round trip for work, on a real Redis."""

from __future__ import annotations

import pytest

from payivr.store import keys
from payivr.store.connect import redis_from_url
from payivr.store.outbox import Outbox, now_ms
from tests.integration.callbacks.cbsupport import record

pytestmark = pytest.mark.integration


def test_take_leases_due_entries_first_then_new_ones_adopted_at_once(redis_url: str) -> None:
    client = redis_from_url(redis_url)
    outbox = Outbox(client)
    outbox.ensure_group()
    results = record(redis_url, "http://127.0.0.1:9/cb", n=3)
    # The first entry failed once and waits for its retry, due now.
    (first,) = outbox.read_new("w1", 1, 0, 10_000)
    assert outbox.retry_later(first, now_ms() - 1, now_ms(), "500", "HTTP 500")

    taken, next_due = outbox.take("w2", 10, now_ms(), 60_000)

    assert [e.event_id for e in taken] == [r.event_id for r in results]
    assert taken[0].attempts == 1 and [e.attempts for e in taken[1:]] == [0, 0]
    assert taken[1].body and taken[1].url == "http://127.0.0.1:9/cb"
    assert len({e.lease_ms for e in taken}) == 1 and next_due == taken[0].lease_ms
    # Adopted: nothing left pending in the group, everything leased on the schedule.
    assert client.xpending(keys.OUTBOX, keys.OUTBOX_GROUP)["pending"] == 0
    assert client.zcard(keys.OUTBOX_SCHEDULE) == 3
    assert outbox.take("w3", 10, now_ms(), 60_000)[0] == []
    assert {r.state for r in outbox.rows()} == {"in-flight"}


def test_take_stops_at_count_and_leaves_the_rest_in_the_group(redis_url: str) -> None:
    outbox = Outbox(redis_from_url(redis_url))
    outbox.ensure_group()
    record(redis_url, "http://127.0.0.1:9/cb", n=5)
    first, _ = outbox.take("w1", 2, now_ms(), 60_000)
    rest, _ = outbox.take("w2", 10, now_ms(), 60_000)
    assert len(first) == 2 and len(rest) == 3
    assert not {e.id for e in first} & {e.id for e in rest}


def test_take_without_the_group_raises_nogroup(redis_url: str) -> None:
    import redis

    record(redis_url, "http://127.0.0.1:9/cb", n=1)
    with pytest.raises(redis.ResponseError, match="NOGROUP"):
        Outbox(redis_from_url(redis_url)).take("w1", 10, now_ms(), 60_000)
