"""The callback worker against a real Redis and a real HTTP endpoint on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from payivr.core.result import callback_body
from payivr.store import keys
from payivr.store.connect import redis_from_url
from payivr.store.outbox import Outbox
from tests.integration.callbacks.cbsupport import (
    CALLBACK_SECRET,
    Endpoint,
    endpoint_running,
    fast_settings,
    record,
    wait_until,
    worker_thread,
)
from tests.support.servers import free_port

pytestmark = pytest.mark.integration


def outbox_empty(redis_url: str) -> bool:
    client = redis_from_url(redis_url)
    return client.xlen(keys.OUTBOX) == 0 and client.zcard(keys.OUTBOX_SCHEDULE) == 0


def test_delivers_signed_body_checkable_with_plain_hmac(
    redis_url: str, config_path: Path, endpoint: Endpoint
) -> None:
    (result,) = record(redis_url, endpoint.url)
    with worker_thread(redis_url, config_path) as worker:
        assert wait_until(lambda: worker.metrics.delivered == 1)
    (got,) = endpoint.received
    assert got.body == callback_body(result)
    assert got.event_id == result.event_id == json.loads(got.body)["event_id"]
    assert got.headers["Content-Type"] == "application/json"
    # An independent check: parse the header by hand and recompute the HMAC.
    parts = dict(p.split("=", 1) for p in got.signature.split(","))
    expected = hmac.new(
        CALLBACK_SECRET, parts["t"].encode() + b"." + got.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert outbox_empty(redis_url), Outbox(redis_from_url(redis_url)).rows()


def test_500_twice_then_200_is_delivered_on_the_third_attempt(
    redis_url: str, config_path: Path, endpoint: Endpoint
) -> None:
    endpoint.behaviour = lambda _e, nth: (500 if nth <= 2 else 200, 0.0)
    (result,) = record(redis_url, endpoint.url)
    with worker_thread(redis_url, config_path) as worker:
        assert wait_until(lambda: worker.metrics.delivered == 1)
        assert worker.metrics.retried == 2
    assert endpoint.event_ids() == [result.event_id] * 3
    # Re-signed at each attempt, same body and event id each time.
    assert len({r.body for r in endpoint.received}) == 1
    assert outbox_empty(redis_url), Outbox(redis_from_url(redis_url)).rows()


def test_endpoint_down_then_up_every_result_arrives(redis_url: str, config_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/cb"
    results = record(redis_url, url, n=20)
    outbox = Outbox(redis_from_url(redis_url))
    with worker_thread(redis_url, config_path) as worker:
        assert wait_until(lambda: worker.metrics.retried >= 40)  # each tried twice, at least
        # Due retries go before new entries: with 8 in flight, the last entries may
        # still be waiting for their first attempt when the 40th retry is counted.
        assert wait_until(lambda: all(r.state in ("retrying", "in-flight") for r in outbox.rows()))
        rows = outbox.rows()
        assert len(rows) == 20
        assert any("Connection" in r.last_error for r in rows)
        with endpoint_running(port) as endpoint:
            assert wait_until(lambda: worker.metrics.delivered == 20)
            assert sorted(endpoint.event_ids()) == sorted(r.event_id for r in results)
    assert outbox_empty(redis_url), Outbox(redis_from_url(redis_url)).rows()


def test_slow_endpoint_times_out_and_is_retried(
    redis_url: str, config_path: Path, endpoint: Endpoint
) -> None:
    endpoint.behaviour = lambda _e, nth: (200, 1.5 if nth == 1 else 0.0)
    (result,) = record(redis_url, endpoint.url)
    settings = fast_settings(read_timeout_s=0.3)
    outbox = Outbox(redis_from_url(redis_url))
    with worker_thread(redis_url, config_path, settings) as worker:
        assert wait_until(lambda: worker.metrics.retried == 1, timeout=5)
        assert wait_until(lambda: worker.metrics.delivered == 1, timeout=5)
    assert endpoint.count(result.event_id) == 2
    assert outbox.rows() == []


def test_endpoint_failing_past_the_retry_window_is_parked_dead(
    redis_url: str, config_path: Path, endpoint: Endpoint
) -> None:
    endpoint.behaviour = lambda _e, _n: (503, 0.0)
    (result,) = record(redis_url, endpoint.url)
    settings = fast_settings(retry_for_s=1.5)
    with worker_thread(redis_url, config_path, settings) as worker:
        assert wait_until(lambda: sum(worker.metrics.dead.values()) == 1, timeout=8)
    (row,) = Outbox(redis_from_url(redis_url)).rows()
    assert row.state == "dead" and row.event_id == result.event_id
    assert row.reason == "retry-window-exhausted"
    assert row.last_status == "503" and "503" in row.last_error
    assert row.attempts == endpoint.count(result.event_id) >= 3


@pytest.mark.parametrize(
    ("merchant", "url", "reason"),
    [
        ("acme", "http://localhost.invalid:{port}/cb", "host-not-allowed"),
        ("acme", "ftp://127.0.0.1:{port}/cb", "scheme-not-allowed"),
        ("strict", "http://127.0.0.1:{port}/cb", "scheme-not-allowed"),
        ("strict", "https://127.0.0.1:{port}/cb", "address-not-allowed"),
        ("public", "http://127.0.0.1:{port}/cb", "address-not-allowed"),
        ("public", "http://localhost:{port}/cb", "address-not-allowed"),
        ("nobody", "http://127.0.0.1:{port}/cb", "unknown-merchant"),
    ],
)
def test_allowlist_violations_are_not_sent_and_parked_dead_with_a_reason(
    redis_url: str, config_path: Path, endpoint: Endpoint, merchant: str, url: str, reason: str
) -> None:
    (result,) = record(redis_url, url.format(port=endpoint.port), merchant=merchant)
    with worker_thread(redis_url, config_path) as worker:
        assert wait_until(lambda: sum(worker.metrics.dead.values()) == 1)
    assert endpoint.received == []
    (row,) = Outbox(redis_from_url(redis_url)).rows()
    assert (row.state, row.reason, row.event_id) == ("dead", reason, result.event_id)
    assert row.attempts == 0


def test_redirects_are_not_followed(redis_url: str, config_path: Path, endpoint: Endpoint) -> None:
    calls: list[int] = []

    def redirect_once(_e: str, nth: int) -> tuple[int, float]:
        calls.append(nth)
        return (302 if nth == 1 else 200, 0.0)

    endpoint.behaviour = redirect_once
    record(redis_url, endpoint.url)
    with worker_thread(redis_url, config_path) as worker:
        assert wait_until(lambda: worker.metrics.delivered == 1)
    # The 302 counted as a failed attempt (retried at the same URL), nothing else hit.
    assert calls == [1, 2] and worker.metrics.retried == 1


def test_entries_read_by_a_dead_worker_are_taken_over(
    redis_url: str, config_path: Path, endpoint: Endpoint
) -> None:
    """A worker that read entries from the group and died before adopting them."""
    results = record(redis_url, endpoint.url, n=3)
    client = redis_from_url(redis_url)
    Outbox(client).ensure_group()
    got = client.xreadgroup(keys.OUTBOX_GROUP, "ghost", {keys.OUTBOX: ">"}, count=10)
    assert len(got[0][1]) == 3
    with worker_thread(redis_url, config_path) as worker:
        assert wait_until(lambda: worker.metrics.delivered == 3, timeout=10)
    assert sorted(endpoint.event_ids()) == sorted(r.event_id for r in results)
    assert client.xpending(keys.OUTBOX, keys.OUTBOX_GROUP)["pending"] == 0


def test_worker_rides_out_a_redis_restart(tmp_path: Path, endpoint: Endpoint) -> None:
    from tests.integration.callbacks.cbsupport import write_config
    from tests.support.servers import RedisServer

    server = RedisServer().start()
    try:
        config_path = write_config(tmp_path, server.url)
        record(server.url, endpoint.url, n=2)
        with worker_thread(server.url, config_path) as worker:
            assert wait_until(lambda: worker.metrics.delivered == 2)
            server.stop()
            server.start()
            record(server.url, endpoint.url, n=2)
            assert wait_until(lambda: worker.metrics.delivered == 4, timeout=20)
    finally:
        server.cleanup()
    assert len(set(endpoint.event_ids())) == 4


def test_record_result_on_an_unknown_group_still_delivers(
    redis_url: str, config_path: Path, endpoint: Endpoint
) -> None:
    """Results written before any worker ever ran (no group yet) are not skipped."""
    record(redis_url, endpoint.url, n=2)
    assert redis_from_url(redis_url).xinfo_groups(keys.OUTBOX) == []
    with worker_thread(redis_url, config_path) as worker:
        assert wait_until(lambda: worker.metrics.delivered == 2)


def test_tls_certificates_are_verified(redis_url: str, config_path: Path, tmp_path: Path) -> None:
    """An https endpoint with a self-signed certificate is not trusted: retried, with
    the verification failure as the last error, and never delivered."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    endpoint = Endpoint().start()
    assert endpoint._server is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    endpoint._server.socket = context.wrap_socket(endpoint._server.socket, server_side=True)
    try:
        (result,) = record(redis_url, f"https://127.0.0.1:{endpoint.port}/cb")
        outbox = Outbox(redis_from_url(redis_url))
        with worker_thread(redis_url, config_path) as worker:
            assert wait_until(lambda: worker.metrics.retried >= 2, timeout=10)
        (row,) = outbox.rows()
        assert row.event_id == result.event_id and row.state == "retrying"
        assert "CERTIFICATE_VERIFY_FAILED" in row.last_error
        assert worker.metrics.delivered == 0 and endpoint.received == []
    finally:
        endpoint.stop()


def test_a_slow_attempt_keeps_its_lease_no_second_worker_sends_it(
    redis_url: str, config_path: Path, endpoint: Endpoint
) -> None:
    """The endpoint takes 3 s to answer, the lease is 1.2 s: the worker renews it,
    so the other worker, idle and polling, never sends the entry meanwhile."""
    endpoint.behaviour = lambda _e, _n: (200, 3.0)
    (result,) = record(redis_url, endpoint.url)
    settings = fast_settings(lease_s=1.2, read_timeout_s=5.0)
    with (
        worker_thread(redis_url, config_path, replace(settings, consumer="one")) as one,
        worker_thread(redis_url, config_path, replace(settings, consumer="two")) as two,
    ):
        assert wait_until(lambda: one.metrics.delivered + two.metrics.delivered == 1, timeout=10)
        time.sleep(1.0)  # time for a wrongful second send to show up
    assert endpoint.event_ids() == [result.event_id]
    assert outbox_empty(redis_url)
