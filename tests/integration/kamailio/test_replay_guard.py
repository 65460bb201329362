"""RedisReplayGuard against a real Redis, and admit() using it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from payivr.core.admission import Accept, Reject, admit
from payivr.core.config import load_config
from payivr.core.replay import ReplayGuard, replay_key
from payivr.store.connect import redis_from_url
from payivr.store.replay_guard import RedisReplayGuard
from tests.integration.kamailio.kamsupport import (
    call_id,
    new_prefix,
    sale_fields,
    signed,
    write_config,
)
from tests.unit.helpers import SDP

pytestmark = pytest.mark.integration


def test_first_claim_wins_and_expires(redis_url: str) -> None:
    client = redis_from_url(redis_url)
    guard: ReplayGuard = RedisReplayGuard(client)

    assert guard.first_seen("payivr:replay:acme:k1", 1) is True
    assert guard.first_seen("payivr:replay:acme:k1", 1) is False
    assert 0 < client.ttl("payivr:replay:acme:k1") <= 1
    time.sleep(1.1)
    assert guard.first_seen("payivr:replay:acme:k1", 1) is True


def test_admit_with_the_redis_guard_refuses_a_replay(redis_url: str, tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, redis_url=redis_url, nodes=["sip:127.0.0.1:5080"]))
    guard = RedisReplayGuard(redis_from_url(redis_url))
    cid = call_id(new_prefix())
    headers = list(signed(sale_fields(), cid).items())

    first = admit(
        headers,
        call_id=cid,
        source_ip="127.0.0.1",
        config=config,
        now=time.time(),
        body=SDP,
        replay=guard,
    )
    second = admit(
        headers,
        call_id=cid,
        source_ip="127.0.0.1",
        config=config,
        now=time.time(),
        body=SDP,
        replay=guard,
    )

    assert isinstance(first, Accept) and first.replay_key is None
    assert isinstance(second, Reject)
    assert second.rejection.status == 403 and second.rejection.header == "X-Pay-Signature"
    signature = dict(headers)["X-Pay-Signature"]
    assert redis_from_url(redis_url).exists(replay_key("acme", cid, signature))


def test_redis_down_raises_rather_than_admitting(tmp_path: Path) -> None:
    from tests.support.servers import free_port

    guard = RedisReplayGuard(redis_from_url(f"redis://127.0.0.1:{free_port()}/0"))
    with pytest.raises(redis.RedisError):
        guard.first_seen("payivr:replay:acme:k2", 10)
