"""The watchdog voids what an orphaned payment may have charged, through the real HTTP
connector adapter against the loopback gateway (which checks every request).

The ESL application charged the card, then died before it could record the answer:
the gateway holds the charge, the session is still `processing`. Once the session's
deadline has passed the watchdog records `failed` / `ivr-unavailable` and asks the
gateway to reverse by idempotency key, with no card data, from another process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fake_connector_server import FakeConnector, FakeConnectorServer
from processors_support import charge_request, find_card_data

from payivr.core.admission import Accept
from payivr.core.config import load_config
from payivr.core.configread import Secret
from payivr.core.processor import ResultCode
from payivr.core.session import SessionState
from payivr.kamailio.admission_store import AdmissionStore
from payivr.processors.http_connector import HttpConnectorProcessor, HttpConnectorSettings
from payivr.store import keys
from payivr.store.connect import redis_from_url
from payivr.store.redis_store import RedisSessionStore
from payivr.watchdog import Watchdog
from tests.conftest import EXAMPLE_CONFIG
from tests.integration.store.storesupport import make_request

SECRET = "connector-secret-0123456789"
pytestmark = pytest.mark.integration


@pytest.fixture()
def gateway() -> Iterator[FakeConnectorServer]:
    server = FakeConnectorServer(FakeConnector(SECRET.encode(), key_id="acme-1")).start()
    yield server
    server.stop()
    assert not server.state.problems, server.state.problems


def connector(server: FakeConnectorServer) -> HttpConnectorProcessor:
    return HttpConnectorProcessor(
        HttpConnectorSettings(
            url=server.url, secret=Secret(SECRET, "file:acme_connector"), key_id="acme-1"
        )
    )


def test_an_orphan_charged_before_its_application_died_is_voided(
    gateway: FakeConnectorServer, redis_url: str
) -> None:
    client = redis_from_url(redis_url)
    config = load_config(EXAMPLE_CONFIG)
    request = make_request("https://cb.example.com/pay", order="W-1")
    session_id = "worphanxxxxxxxxxxxxxxxxxxx"
    accept = Accept(request, config.merchants["acme"], replay_key=None, replay_ttl_s=0)
    AdmissionStore(client, 600).create_session(accept, session_id, time.time())
    store = RedisSessionStore(client)
    session = store.load(session_id)
    assert session is not None
    store.set_state(session, SessionState.PROCESSING, datetime.now(UTC))
    # The application's charge went through; then it died without recording it.
    charged = connector(gateway).charge(charge_request("W-1"))
    assert charged.code is ResultCode.APPROVED
    assert gateway.state.charged == {charge_request("W-1").idempotency_key: 1250}

    client.zadd(keys.INFLIGHT, {session_id: time.time() - 1})
    report = Watchdog(client, config, processors={"acme": connector(gateway)}).sweep()

    assert report.finalised == [session_id]
    assert report.reversals == {session_id: "reversed"}
    assert gateway.state.charged == {}
    sale, reverse = gateway.state.requests
    assert reverse["operation"] == "reverse"
    assert reverse["idempotency_key"] == sale["idempotency_key"]
    assert (reverse["merchant"], reverse["order"]) == ("acme", "W-1")
    assert find_card_data(json.dumps(reverse)) == []
    fields = client.hgetall(keys.session_key(session_id))
    assert (fields["reversal"], fields["reversal_raw_code"]) == ("reversed", "VOIDED")
    done = store.load(session_id)
    assert done is not None and done.result is not None
    assert (done.result.code, done.result.reason) == (ResultCode.FAILED, "ivr-unavailable")
    (entry,) = [f for _id, f in client.xrange(keys.OUTBOX)]
    assert json.loads(entry["body"])["result"] == "failed"
