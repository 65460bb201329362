"""RedisSessionStore against a real Redis: sessions, events, the atomic result step."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from payivr.core.session import Event, SessionState
from payivr.store import keys
from payivr.store.connect import redis_from_url
from payivr.store.redis_store import RedisSessionStore, add_create_to
from tests.integration.store.storesupport import approved, make_session

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture()
def client(redis_url: str) -> redis.Redis:
    return redis_from_url(redis_url)


def events(client: redis.Redis) -> list[dict[str, str]]:
    return [fields for _id, fields in client.xrange(keys.EVENTS)]


def test_create_load_round_trip_with_ttl_and_created_event(client: redis.Redis) -> None:
    store = RedisSessionStore(client, ttl_s=3600)
    session = make_session("https://cb.example.com/pay")
    store.create(session, ttl_s=120)
    assert store.load(session.id) == session
    assert 0 < client.ttl(keys.session_key(session.id)) <= 120
    assert [e["event"] for e in events(client)] == ["session.created"]
    assert events(client)[0]["session"] == session.id
    assert store.load("no-such-session") is None


def test_set_state_writes_state_and_its_event_together(client: redis.Redis) -> None:
    store = RedisSessionStore(client, ttl_s=300)
    session = make_session()
    store.create(session)
    now = datetime.now(UTC)
    updated = store.set_state(session, SessionState.CAPTURING, now)
    assert store.load(session.id) == updated
    assert updated.state is SessionState.CAPTURING
    store.set_state(updated, SessionState.PROCESSING, now)
    names = [e["event"] for e in events(client)]
    assert names == ["session.created", "capture.started", "payment.processing"]


def test_set_state_on_an_expired_session_writes_it_back_whole(client: redis.Redis) -> None:
    store = RedisSessionStore(client, ttl_s=300)
    session = make_session()
    store.create(session)
    client.delete(keys.session_key(session.id))
    store.set_state(session, SessionState.CAPTURING, datetime.now(UTC))
    loaded = store.load(session.id)
    assert loaded is not None and loaded.state is SessionState.CAPTURING
    assert 0 < client.ttl(keys.session_key(session.id)) <= 300


def test_record_result_is_one_step_with_outbox_entry_and_event(client: redis.Redis) -> None:
    store = RedisSessionStore(client)
    session = make_session("https://cb.example.com/pay")
    store.create(session)
    result = approved(session)
    done = store.record_result(session, result, datetime.now(UTC))
    loaded = store.load(session.id)
    assert loaded == done and loaded.state is SessionState.DONE and loaded.result == result
    ((_entry_id, entry),) = client.xrange(keys.OUTBOX)
    assert entry["event_id"] == result.event_id
    assert entry["url"] == "https://cb.example.com/pay"
    body = json.loads(entry["body"])
    assert body["event_id"] == result.event_id and body["card"]["last4"] == "1111"
    last = events(client)[-1]
    assert last["event"] == Event.PAYMENT_RESULT and last["result"] == "approved"
    assert last["event_id"] == result.event_id


def test_record_result_without_callback_url_writes_no_outbox_entry(client: redis.Redis) -> None:
    store = RedisSessionStore(client)
    session = make_session(None)
    store.create(session)
    store.record_result(session, approved(session), datetime.now(UTC))
    assert client.xlen(keys.OUTBOX) == 0
    assert events(client)[-1]["event"] == "payment.result"


def test_record_result_surfaces_a_failed_transaction(client: redis.Redis) -> None:
    """A write that fails inside the transaction raises: never a silently lost result."""
    store = RedisSessionStore(client)
    session = make_session("https://cb.example.com/pay")
    store.create(session)
    client.set(keys.OUTBOX, "not a stream")  # XADD fails at EXEC time
    with pytest.raises(redis.ResponseError):
        store.record_result(session, approved(session), datetime.now(UTC))


def test_events_stream_is_capped(client: redis.Redis) -> None:
    store = RedisSessionStore(client, events_maxlen=100)
    session = make_session()
    for _ in range(600):
        store.append_event(
            Event.FIELD_COMPLETED, session, datetime.now(UTC), field="pan", valid="true"
        )
    # MAXLEN ~ trims by whole macro nodes (100 entries each by default): near, not exact.
    assert client.xlen(keys.EVENTS) < 300


def test_create_works_in_a_kamailio_pipeline_with_debian_python3_redis(redis_url: str) -> None:
    """Kamailio's interpreter is /usr/bin/python3 with Debian's python3-redis 4.3."""
    if not Path("/usr/bin/python3").exists():
        pytest.skip("no /usr/bin/python3")
    code = textwrap.dedent(f"""
        import sys, redis
        sys.path.insert(0, {str(REPO / "pylib")!r})
        sys.path.insert(0, {str(REPO)!r})
        from payivr.store.redis_store import add_create_to, RedisSessionStore
        from tests.integration.store.storesupport import make_session
        client = redis.Redis.from_url({redis_url!r}, socket_timeout=2)
        s = make_session("https://cb.example.com/x")
        pipe = client.pipeline(transaction=True)
        pipe.incr("kamailio-own-counter")
        add_create_to(pipe, s, 60)
        pipe.execute()
        assert RedisSessionStore(client).load(s.id) == s
        print(redis.__version__, s.id)
    """)
    out = subprocess.run(
        ["/usr/bin/python3", "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert out.returncode == 0, out.stderr
    version, session_id = out.stdout.split()
    client = redis_from_url(redis_url)
    assert client.exists(keys.session_key(session_id))
    assert client.get("kamailio-own-counter") == "1"
    print("debian redis-py", version)


def test_add_create_to_in_this_interpreter(client: redis.Redis) -> None:
    session = make_session()
    pipe = client.pipeline(transaction=True)
    add_create_to(pipe, session, 60)
    pipe.execute()
    assert RedisSessionStore(client).load(session.id) == session
    assert sys.version_info >= (3, 11)


def test_record_result_with_annotations_and_a_later_annotate(client: redis.Redis) -> None:
    store = RedisSessionStore(client, ttl_s=300)
    session = make_session()
    store.create(session)
    now = datetime.now(UTC)
    fields = {"processor_raw_code": "payivr:timeout", "reversal": "pending"}
    done = store.record_result(session, approved(session), now, fields)
    raw = client.hgetall(keys.session_key(session.id))
    assert raw["processor_raw_code"] == "payivr:timeout" and raw["reversal"] == "pending"
    assert store.load(session.id) == done  # the extra fields do not disturb the session
    assert store.annotate(session.id, reversal="reversed", reversal_raw_code="0400")
    raw = client.hgetall(keys.session_key(session.id))
    assert (raw["reversal"], raw["reversal_raw_code"]) == ("reversed", "0400")
    # A later state change rewrites the session's own fields and keeps the annotations.
    store.set_state(done, SessionState.RETURNED, now)
    assert client.hget(keys.session_key(session.id), "reversal") == "reversed"


def test_annotate_never_resurrects_an_expired_session(client: redis.Redis) -> None:
    store = RedisSessionStore(client)
    assert store.annotate("gone-session", reversal="reversed") is False
    assert not client.exists(keys.session_key("gone-session"))


def test_annotations_cannot_overwrite_session_fields(client: redis.Redis) -> None:
    store = RedisSessionStore(client)
    session = make_session()
    store.create(session)
    with pytest.raises(ValueError, match="not a session annotation"):
        store.annotate(session.id, state="done")
    with pytest.raises(ValueError):
        store.record_result(session, approved(session), datetime.now(UTC), {"result": "x"})
    assert store.load(session.id) == session


def test_result_annotations_land_with_the_result_and_later_ones_only_on_live_sessions(
    client: redis.Redis,
) -> None:
    store = RedisSessionStore(client)
    session = make_session("https://cb.example.com/pay")
    store.create(session)
    result = approved(session)
    store.record_result(session, result, datetime.now(UTC), {"processor_raw_code": "0000"})
    key = keys.session_key(session.id)
    assert client.hget(key, "processor_raw_code") == "0000"
    assert store.load(session.id).result == result  # type: ignore[union-attr]
    assert store.annotate(session.id, reversal="reversed") is True
    assert client.hget(key, "reversal") == "reversed"
    # Only the operator fields: a session's own fields cannot be overwritten this way.
    with pytest.raises(ValueError):
        store.annotate(session.id, state="approved")
    with pytest.raises(ValueError):
        store.record_result(session, result, datetime.now(UTC), {"result": "x"})
    # An expired session is not brought back as a stub.
    client.delete(key)
    assert store.annotate(session.id, reversal="reversed") is False
    assert not client.exists(key)
