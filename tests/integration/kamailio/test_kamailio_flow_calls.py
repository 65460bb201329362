"""Kamailio relays calls to a flow's entry point (docs/flows.md), real SIPp and Redis.

A call without X-Pay-Merchant whose number dialled (or trunk header) is an entry point
and whose source the entry point allows reaches a FreeSWITCH node, with the same
failover as payment calls, without a session and without any X-Pay-* or session
header a trunk sent. Other calls without a merchant keep today's 400; an entry point's
call from a source it does not allow is a 403. Nothing is written to Redis for any.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.kamailio.conftest import Blackhole, Stack, stack_running
from tests.integration.kamailio.kamsupport import Call, SippUas, call_id, new_prefix
from tests.support.servers import RedisServer

pytestmark = pytest.mark.integration

FLOW_UAS = "uas-freeswitch-answers-flow-call"


def flow_calls(uas: SippUas, count: int, timeout: float = 5.0) -> dict[str, str]:
    """Call-ID -> the number dialled, of the flow calls the stand-in node answered."""
    deadline = time.monotonic() + timeout
    found: dict[str, str] = {}
    while time.monotonic() < deadline:
        found = {}
        for line in uas.log().splitlines():
            if line.startswith("flow call-id="):
                cid, _, rest = line[len("flow call-id=") :].partition(" to=")
                found[cid.strip()] = rest.split(" uri=")[0].strip()
        if len(found) >= count:
            break
        time.sleep(0.05)
    return found


@pytest.fixture(scope="module")
def flow_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("kamflow")
    with stack_running(workdir, redis_server.url, uas_scenario=FLOW_UAS) as stack:
        yield stack


def test_entry_number_is_relayed_without_session_or_payment_headers(flow_stack: Stack) -> None:
    flow_stack.redis.flushall()
    prefix = new_prefix()
    forged = Call(["X-Payivr-Session: AAAAAAAAAAAAAAAAAAAAAA", "X-Pay-Order: sneaked-in"])

    result = flow_stack.uac("uac-flow-entry-expect-relayed", [forged], prefix, extra=("-s", "8000"))

    assert result.returncode == 0, result.explain()
    assert flow_stack.uas is not None
    # The stand-in refuses (and logs nothing for) an INVITE with either header.
    assert flow_calls(flow_stack.uas, 1) == {call_id(prefix): "8000"}
    assert flow_stack.uas.errors().count("Aborting") == 0, flow_stack.uas.errors()
    assert flow_stack.session_keys() == [] and flow_stack.events() == []
    assert "entry=support" in flow_stack.kamailio.log_text()


def test_trunk_header_entry_is_relayed(flow_stack: Stack) -> None:
    prefix = new_prefix()

    result = flow_stack.uac(
        "uac-flow-entry-expect-relayed",
        [Call(["X-Payivr-Entry: partner"])],
        prefix,
        extra=("-s", "pay"),
    )

    assert result.returncode == 0, result.explain()
    assert flow_stack.uas is not None
    assert flow_calls(flow_stack.uas, 1).get(call_id(prefix)) == "pay"


def test_unknown_number_keeps_the_missing_merchant_400(flow_stack: Stack) -> None:
    flow_stack.redis.flushall()
    prefix = new_prefix()

    result = flow_stack.uac(
        "uac-unknown-number-expect-400",
        [Call(["X-Payivr-Entry: not-a-line"])],
        prefix,
        extra=("-s", "9999"),
    )

    assert result.returncode == 0, result.explain()
    assert flow_stack.uas is not None
    assert call_id(prefix) not in flow_calls(flow_stack.uas, 1, timeout=0.5)
    assert flow_stack.session_keys() == [] and flow_stack.events() == []


def test_entry_point_refuses_a_source_it_does_not_allow(flow_stack: Stack) -> None:
    prefix = new_prefix()

    result = flow_stack.uac(
        "uac-flow-entry-from-foreign-source-expect-403", [Call([])], prefix, extra=("-s", "8001")
    )

    assert result.returncode == 0, result.explain()
    assert "may not call entry point elsewhere" in result.log
    assert flow_stack.uas is not None
    assert call_id(prefix) not in flow_calls(flow_stack.uas, 1, timeout=0.5)


def test_flow_calls_fail_over_from_a_dead_node_to_a_live_one(
    tmp_path: Path, redis_url: str, blackhole: Blackhole
) -> None:
    with stack_running(
        tmp_path,
        redis_url,
        uas_scenario=FLOW_UAS,
        node_ports=[blackhole.port],
        fr_timer_ms=400,
    ) as stack:
        prefix = new_prefix()

        result = stack.uac(
            "uac-flow-entry-expect-relayed",
            [Call([]), Call([])],
            prefix,
            rate=1,
            extra=("-s", "8000"),
        )

        assert result.returncode == 0, result.explain()
        assert blackhole.methods().count("INVITE") >= 1, "no call tried the dead node"
        assert stack.uas is not None
        assert set(flow_calls(stack.uas, 2)) == {call_id(prefix, 1), call_id(prefix, 2)}
        assert stack.session_keys() == []
