"""Kamailio's SIP plumbing around admission: dialogs both ways, failover, probing,
Redis down, rate limits, and calls FreeSWITCH places back to the contact center."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from tests.integration.kamailio.conftest import Blackhole, Stack, stack_running
from tests.integration.kamailio.kamsupport import (
    Call,
    SippUas,
    call_id,
    new_prefix,
    run_uac,
    send_raw_invite,
    signed_sale,
)
from tests.support.servers import RedisServer, free_port

pytestmark = pytest.mark.integration


def test_bye_from_the_ivr_reaches_the_caller(tmp_path: Path, redis_url: str) -> None:
    with stack_running(tmp_path, redis_url, uas_scenario="uas-freeswitch-hangs-up") as stack:
        prefix = new_prefix()
        result = stack.uac("uac-sale-expect-bye-from-ivr", [signed_sale(call_id(prefix))], prefix)

        assert result.returncode == 0, result.explain()
        assert stack.uas is not None
        assert call_id(prefix) in stack.uas.wait_for_calls(1)
        assert stack.uas.errors().count("Aborting") == 0


def test_refer_from_the_ivr_reaches_the_caller_only_for_allowlisted_targets(
    tmp_path: Path, redis_url: str
) -> None:
    with stack_running(tmp_path, redis_url, uas_scenario="uas-freeswitch-refers-back") as stack:
        prefix = new_prefix()
        result = stack.uac("uac-sale-expect-refer-from-ivr", [signed_sale(call_id(prefix))], prefix)

        assert result.returncode == 0, result.explain()
        assert "refer-to=" in result.log and "evil" not in result.log
        assert stack.uas is not None
        assert "refused-refer warning=" in stack.uas.log()
        assert stack.uas.errors().count("Aborting") == 0


def test_failover_from_a_dead_node_to_a_live_one(
    tmp_path: Path, redis_url: str, blackhole: Blackhole
) -> None:
    # Round-robin over [dead, live]: of two calls one is sent to the dead node first;
    # it times out (fr_timer), the failure route marks the node and tries the next.
    with stack_running(tmp_path, redis_url, node_ports=[blackhole.port], fr_timer_ms=400) as stack:
        prefix = new_prefix()
        calls = [signed_sale(call_id(prefix, n), **{"X-Pay-Order": f"F{n}"}) for n in (1, 2)]

        result = stack.uac("uac-sale-expect-relayed", calls, prefix, rate=1)

        assert result.returncode == 0, result.explain()
        assert blackhole.methods().count("INVITE") >= 1, "no call tried the dead node"
        assert stack.uas is not None
        assert set(stack.uas.wait_for_calls(2)) == {call_id(prefix, 1), call_id(prefix, 2)}
        assert len(stack.session_keys()) == 2


def test_every_node_failing_is_503_and_the_session_is_closed(
    tmp_path: Path, redis_url: str, blackhole: Blackhole
) -> None:
    with stack_running(
        tmp_path, redis_url, uas_scenario=None, node_ports=[blackhole.port], fr_timer_ms=400
    ) as stack:
        prefix = new_prefix()
        result = stack.uac("uac-no-node-expect-503", [signed_sale(call_id(prefix))], prefix)

        assert result.returncode == 0, result.explain()
        assert "FreeSWITCH" in result.log
        assert "INVITE" in blackhole.methods()
        assert stack.session_keys() == []
        assert [e["event"] for e in stack.events()] == ["session.created", "session.closed"]
        assert stack.events()[1]["reason"] == "no-freeswitch-node"


def test_dispatcher_probes_nodes_and_skips_dead_ones(
    tmp_path: Path, redis_url: str, blackhole: Blackhole
) -> None:
    with stack_running(
        tmp_path,
        redis_url,
        uas_scenario=None,
        node_ports=[blackhole.port],
        fr_timer_ms=300,
        ds_ping_interval_s=1,
    ) as stack:
        # ds_probing_threshold 2: two unanswered probes take the node out.
        deadline = time.monotonic() + 6
        while blackhole.methods().count("OPTIONS") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert blackhole.methods().count("OPTIONS") >= 2, "dispatcher sent no OPTIONS probes"
        time.sleep(0.6)  # the second probe's own timeout
        prefix = new_prefix()

        started = time.monotonic()
        result = stack.uac("uac-no-node-expect-503", [signed_sale(call_id(prefix))], prefix)

        assert result.returncode == 0, result.explain()
        assert time.monotonic() - started < 5.0
        assert "INVITE" not in blackhole.methods(), "an INVITE went to a node known dead"
        assert stack.session_keys() == [] and stack.events() == []


def test_redis_down_is_a_quick_503_and_recovers(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    redis_srv = RedisServer(workdir=tmp_path / "redis").start()
    try:
        with stack_running(tmp_path, redis_srv.url) as stack:
            redis_srv.stop()
            prefix = new_prefix()
            started = time.monotonic()
            down = stack.uac("uac-redis-down-expect-503", [signed_sale(call_id(prefix))], prefix)
            assert down.returncode == 0, down.explain()
            assert time.monotonic() - started < 3.0

            redis_srv = RedisServer(port=redis_srv.port, workdir=tmp_path / "redis").start()
            time.sleep(1.2)  # the router's back-off after a Redis failure
            prefix = new_prefix()
            back = stack.uac("uac-sale-expect-relayed", [signed_sale(call_id(prefix))], prefix)
            assert back.returncode == 0, back.explain()
            assert stack.kamailio.proc is not None and stack.kamailio.proc.poll() is None
    finally:
        redis_srv.cleanup()


def test_redis_that_stops_answering_is_a_503_not_a_hang(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    redis_srv = RedisServer(workdir=tmp_path / "redis").start()
    try:
        with stack_running(tmp_path, redis_srv.url) as stack:
            assert redis_srv.proc is not None
            redis_srv.proc.send_signal(signal.SIGSTOP)  # connections open, no answers
            try:
                prefix = new_prefix()
                started = time.monotonic()
                hung = stack.uac(
                    "uac-redis-down-expect-503", [signed_sale(call_id(prefix))], prefix
                )
                elapsed = time.monotonic() - started
            finally:
                redis_srv.proc.send_signal(signal.SIGCONT)
            assert hung.returncode == 0, hung.explain()
            assert elapsed < 4.0  # the 0.5 s command timeout, not SIP's 32 s
            assert stack.kamailio.proc is not None and stack.kamailio.proc.poll() is None
    finally:
        redis_srv.cleanup()


def test_source_flood_is_503_with_retry_after(tmp_path: Path, redis_url: str) -> None:
    with stack_running(tmp_path, redis_url, per_source=2) as stack:
        prefix = new_prefix()
        for n in range(12):  # unsigned: pike counts them before anything else
            send_raw_invite(stack.port, Call(["X-Pay-Merchant: acme"]), f"flood-{prefix}-{n}")
        result = stack.uac("uac-source-flood-expect-503", [signed_sale(call_id(prefix))], prefix)

        assert result.returncode == 0, result.explain()
        assert re.search(r"retry-after= *7\b", result.log), result.log
        assert stack.session_keys() == []


def test_merchant_flood_is_503_with_retry_after(tmp_path: Path, redis_url: str) -> None:
    with stack_running(tmp_path, redis_url, per_merchant=1) as stack:
        # The counter is per merchant and second: both calls must fall in one second.
        # On a busy host SIPp may start late, so a run that crossed a second is retried.
        for _attempt in range(3):
            prefix = new_prefix()
            while time.time() % 1 > 0.2:
                time.sleep(0.02)
            started = int(time.time())
            first = call_id(prefix, 99)
            send_raw_invite(stack.port, signed_sale(first), first)
            result = stack.uac(
                "uac-merchant-flood-expect-503",
                [signed_sale(call_id(prefix))],
                prefix,
                timeout_s=5,
            )
            if result.returncode == 0 or int(time.time()) == started:
                break  # passed, or failed inside one second: a real failure
        assert result.returncode == 0, result.explain()
        assert "rate limit for acme" in result.log
        deadline = time.monotonic() + 3
        while not calls_with_sessions(stack) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert call_id(prefix, 99) in calls_with_sessions(stack)  # the first call
        assert call_id(prefix) not in calls_with_sessions(stack)  # not the refused one


def calls_with_sessions(stack: Stack) -> set[str]:
    return {stack.redis.hget(key, "call_id") for key in stack.session_keys()}


def test_calls_back_to_the_contact_center_go_to_allowlisted_hosts_only(
    tmp_path: Path, redis_url: str
) -> None:
    node_port = free_port()  # the "FreeSWITCH" UAC sends from a dispatcher node's address
    cc = SippUas("uas-contact-center-answers", free_port(), tmp_path).start()
    try:
        with stack_running(tmp_path, redis_url, uas_scenario=None, node_ports=[node_port]) as stack:
            result_headers = ["X-Pay-Result: approved", "X-Pay-Session: s3ss10n", "X-Pay-Order: A1"]
            prefix = new_prefix()
            ok = run_uac(
                "uac-return-call-expect-relayed",
                stack.port,
                [Call([f"sip:agent7@127.0.0.1:{cc.port}", *result_headers])],
                tmp_path,
                prefix=prefix,
                local_port=node_port,
            )
            assert ok.returncode == 0, ok.explain()
            assert call_id(prefix) in cc.wait_for_calls(1)

            prefix = new_prefix()
            refused = run_uac(
                "uac-return-to-foreign-host-expect-403",
                stack.port,
                [Call(["sip:agent7@evil.example.net", *result_headers])],
                tmp_path,
                prefix=prefix,
                local_port=node_port,
            )
            assert refused.returncode == 0, refused.explain()
    finally:
        cc.stop()
