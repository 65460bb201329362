"""Send-time policy: URL and address checks, backoff, metrics (the peer check:
test_callbacks_client.py)."""

from __future__ import annotations

import random

import pytest

from payivr.callbacks.backoff import Backoff
from payivr.callbacks.metrics import Metrics
from payivr.callbacks.policy import CallbackPolicy, NotAllowed, address_allowed, check_url
from tests.integration.callbacks.cbsupport import scraped_samples

POLICY = CallbackPolicy(secret=b"s", hosts=frozenset({"cb.example.com", "127.0.0.1"}))


@pytest.mark.parametrize(
    ("address", "strict", "relaxed"),
    [
        ("93.184.216.34", True, True),
        ("2606:2800:220:1:248:1893:25c8:1946", True, True),
        ("127.0.0.1", False, True),
        ("10.1.2.3", False, True),
        ("172.16.5.4", False, True),
        ("192.168.1.1", False, True),
        ("169.254.169.254", False, True),  # cloud metadata: link-local
        ("100.64.0.1", False, True),  # shared address space
        ("::1", False, True),
        ("fe80::1%eth0", False, True),
        ("fc00::1", False, True),
        ("::ffff:127.0.0.1", False, True),  # loopback in IPv4-mapped disguise
        ("0.0.0.0", False, False),
        ("224.0.0.1", False, False),
        ("not-an-ip", False, False),
    ],
)
def test_address_allowed(address: str, strict: bool, relaxed: bool) -> None:
    assert address_allowed(address, allow_private=False) is strict
    assert address_allowed(address, allow_private=True) is relaxed


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://evil.example.com/cb", "host-not-allowed"),
        ("https://cb.example.com.evil.example/cb", "host-not-allowed"),
        ("http://cb.example.com/cb", "scheme-not-allowed"),
        ("gopher://cb.example.com/", "scheme-not-allowed"),
        ("https://user:pw@cb.example.com/cb", "bad-url"),
        ("https://cb.example.com:99999/cb", "bad-url"),
        ("https:///cb", "bad-url"),
    ],
)
def test_check_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(NotAllowed) as info:
        check_url(url, POLICY)
    assert info.value.reason == reason


def test_check_url_accepts_allowlisted_hosts_any_case() -> None:
    assert check_url("https://CB.Example.com:8443/pay?x=1", POLICY).port == 8443
    relaxed = CallbackPolicy(secret=b"s", hosts=POLICY.hosts, allow_http=True)
    assert check_url("http://127.0.0.1:8080/cb", relaxed).hostname == "127.0.0.1"


def test_backoff_grows_is_jittered_and_capped() -> None:
    b = Backoff(base_ms=1000, max_ms=60_000, retry_for_ms=86_400_000)
    rng = random.Random(7)
    for n, ceiling in [(1, 1000), (2, 2000), (3, 4000), (6, 32_000), (7, 60_000), (30, 60_000)]:
        delays = {b.delay_ms(n, rng) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (n, delays)
        assert len(delays) > 10  # jittered, not fixed


def test_backoff_stops_at_the_end_of_the_retry_window() -> None:
    b = Backoff(base_ms=1000, max_ms=1000, retry_for_ms=10_000)
    assert b.next_attempt_ms(1, now_ms=5_000, window_start_ms=0) is not None
    assert b.next_attempt_ms(1, now_ms=9_600, window_start_ms=0) is None


def test_metrics_text_exposition() -> None:
    m = Metrics()
    m.observe_delivered(0.02)
    m.observe_delivered(None)
    m.observe_retried()
    m.observe_dead("host-not-allowed")
    m.add_outbox_gauges(lambda: {"dead": 1})
    samples = scraped_samples(m.render())
    assert samples["payivr_callbacks_delivered_total"] == 2
    assert samples["payivr_callbacks_retried_total"] == 1
    assert samples['payivr_callbacks_dead_total{reason="host-not-allowed"}'] == 1
    assert samples['payivr_callbacks_dead_total{reason="retry-window-exhausted"}'] == 0
    assert samples['payivr_callbacks_result_to_delivery_seconds_bucket{le="0.01"}'] == 0
    assert samples['payivr_callbacks_result_to_delivery_seconds_bucket{le="0.025"}'] == 1
    assert samples['payivr_callbacks_result_to_delivery_seconds_bucket{le="+Inf"}'] == 1
    assert samples["payivr_callbacks_result_to_delivery_seconds_count"] == 1
    assert samples["payivr_callbacks_result_to_delivery_seconds_sum"] == pytest.approx(0.02)
    assert samples["payivr_callbacks_dead_entries"] == 1
    assert m.delivered == 2 and m.retried == 1 and m.dead["host-not-allowed"] == 1


def test_metrics_keep_the_counters_when_redis_does_not_answer() -> None:
    m = Metrics()
    m.observe_delivered(None)

    def redis_down() -> dict[str, int]:
        raise ConnectionError("redis down")

    m.add_outbox_gauges(redis_down)
    samples = scraped_samples(m.render())
    assert samples["payivr_callbacks_delivered_total"] == 1
    assert samples["payivr_callbacks_result_to_delivery_seconds_count"] == 0
    assert not any(name.endswith("_entries") for name in samples)
