"""Kamailio's admission write on a real Redis: the script's one-line reply, read by hand.

AdmissionStore packs EVALSHA itself and reads the script's RESP reply straight off its
connection (redis-py's parser cost more CPU than the round trip in a Kamailio worker).
These tests hold it to what redis-py did: created / replayed, NOSCRIPT reloads the
script, an error reply or a timeout raises redis' own exceptions (the router answers
503 on RedisError) and leaves no reply behind for the next call.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis

from payivr.core.admission import Accept
from payivr.core.config import Config, load_config
from payivr.kamailio.admission_store import AdmissionStore, AdmissionWrite
from payivr.store import keys
from payivr.store.connect import redis_from_url
from tests.conftest import EXAMPLE_CONFIG
from tests.integration.store.storesupport import make_request
from tests.support.servers import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(EXAMPLE_CONFIG)


def accept(config: Config, order: str, replay_ttl_s: int = 600) -> Accept:
    return Accept(
        make_request(None, order),
        config.merchants["acme"],
        replay_key=keys.PREFIX + f"replay:acme:{order}",
        replay_ttl_s=replay_ttl_s,
    )


def test_a_session_is_created_once_and_its_replay_writes_nothing(
    redis_url: str, config: Config
) -> None:
    client = redis_from_url(redis_url)
    store = AdmissionStore(client, 600)
    first = store.create_session(accept(config, "A1"), "s1", time.time())
    again = store.create_session(accept(config, "A1"), "s2", time.time())
    assert (first, again) == (AdmissionWrite.CREATED, AdmissionWrite.REPLAYED)
    assert client.exists(keys.session_key("s1")) == 1
    assert client.exists(keys.session_key("s2")) == 0
    assert client.zscore(keys.INFLIGHT, "s1") is not None
    assert [f["session"] for _id, f in client.xrange(keys.EVENTS)] == ["s1"]


def test_an_emptied_script_cache_is_refilled_and_the_call_admitted(
    redis_url: str, config: Config
) -> None:
    client = redis_from_url(redis_url)
    store = AdmissionStore(client, 600)
    assert store.create_session(accept(config, "A1"), "s1", time.time()) is AdmissionWrite.CREATED
    client.script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT
    assert store.create_session(accept(config, "A2"), "s2", time.time()) is AdmissionWrite.CREATED
    assert client.exists(keys.session_key("s2")) == 1


def test_an_error_reply_raises_and_the_next_call_gets_its_own_reply(
    redis_url: str, config: Config
) -> None:
    client = redis_from_url(redis_url)
    store = AdmissionStore(client, 600)
    # SET ... EX -1 fails inside the script: Redis answers an error line.
    with pytest.raises(redis.ResponseError, match="expire"):
        store.create_session(accept(config, "A1", replay_ttl_s=-1), "s1", time.time())
    assert store.create_session(accept(config, "A2"), "s2", time.time()) is AdmissionWrite.CREATED
    assert client.exists(keys.session_key("s1")) == 0


def test_a_slow_redis_times_out_and_its_late_reply_is_not_taken_by_the_next_call(
    redis_url: str, config: Config
) -> None:
    client = redis_from_url(redis_url)
    store = AdmissionStore(redis_from_url(redis_url, socket_timeout=0.2), 600)
    # The script is loaded first, so that the late reply is the script's answer.
    assert store.create_session(accept(config, "A0"), "s0", time.time()) is AdmissionWrite.CREATED
    client.client_pause(600)  # every command from now on waits 0.6 s
    started = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        store.create_session(accept(config, "A1"), "s1", time.time())
    assert time.monotonic() - started < 0.5
    time.sleep(0.6)
    # Were the connection kept, "A1"'s late reply would answer the next call, and each
    # call after it would read its predecessor's reply: the replay below would pass.
    assert store.create_session(accept(config, "A2"), "s2", time.time()) is AdmissionWrite.CREATED
    assert store.create_session(accept(config, "A2"), "s3", time.time()) is (
        AdmissionWrite.REPLAYED
    )


def test_a_closed_connection_raises_connection_error_then_reconnects(
    redis_url: str, config: Config
) -> None:
    client = redis_from_url(redis_url)
    store = AdmissionStore(client, 600)
    assert store.create_session(accept(config, "A1"), "s1", time.time()) is AdmissionWrite.CREATED
    killed = threading.Event()

    def kill_admission_connections() -> None:
        for info in client.client_list():
            if info["name"] == "" and info["cmd"] == "evalsha":
                client.client_kill_filter(_id=info["id"])
                killed.set()

    kill_admission_connections()
    assert killed.is_set()
    # The first send after the kill may go out before the close is seen; either it
    # fails with ConnectionError or it reconnects: never a wrong answer.
    try:
        outcome = store.create_session(accept(config, "A2"), "s2", time.time())
    except redis.ConnectionError:
        outcome = store.create_session(accept(config, "A2"), "s2", time.time())
    assert outcome is AdmissionWrite.CREATED


def test_a_demoted_master_drops_the_connection_so_the_next_call_asks_anew(
    redis_url: str, config: Config, tmp_path: Path
) -> None:
    """READONLY (a master turned replica, as after a Sentinel failover and a healed
    partition): the connection is closed, so that the next call connects again and a
    Sentinel-built client looks the master up instead of writing to a replica forever."""
    client = redis_from_url(redis_url)
    before = admission_connections(client)
    store = AdmissionStore(client, 600)
    assert store.create_session(accept(config, "A1"), "s1", time.time()) is AdmissionWrite.CREATED
    ours = admission_connections(client) - before
    assert len(ours) == 1
    (tmp_path / "other").mkdir()
    other = RedisServer(workdir=tmp_path / "other").start()
    try:
        client.replicaof("127.0.0.1", other.port)
        with pytest.raises(redis.ResponseError, match="READONLY"):
            store.create_session(accept(config, "A2"), "s2", time.time())
        assert not ours & admission_connections(client)
        client.replicaof("NO", "ONE")
        assert store.create_session(accept(config, "A3"), "s3", time.time()) is (
            AdmissionWrite.CREATED
        )
    finally:
        client.replicaof("NO", "ONE")
        other.cleanup()


def admission_connections(client: redis.Redis) -> set[str]:
    """Ids of the connections whose last command was the admission script."""
    return {info["id"] for info in client.client_list() if info["cmd"] == "evalsha"}
