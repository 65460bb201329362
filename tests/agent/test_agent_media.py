"""Agent mode with rtpengine in the agent leg's media path (payivr.media).

The agent service against the transcript ESL peer (tests/agent/peer.py) and real
Redis, plus a real rtpengine: the agent's leg is dialled through Kamailio
(`fs_path`, `X-Payivr-Leg: agent`, a Call-ID payivr chose); the test creates that
call in rtpengine with Kamailio's offer/answer flags, as Kamailio would. A payment
then blocks DTMF in rtpengine instead of muting the caller towards the agent (the
agent hears the caller), and unblocks it at the result; a second payment does the
same. When rtpengine cannot mask, FreeSWITCH mutes the caller instead.
The media itself is checked in tests/integration/rtpengine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from payivr.agent.settings import load_agent_settings
from payivr.core.config import ConfigError, parse_config
from payivr.media.ng import NgClient
from tests.agent.harness import AgentStack, SseReader
from tests.agent.test_agent_calls import CARD_OK, CVV, EXPIRY, assert_no_card_data, start_payment
from tests.esl.peer import Keys
from tests.integration.rtpengine.call import MediaCall
from tests.integration.rtpengine.server import RtpengineServer, rtpengine_binary
from tests.support.servers import free_port

KAMAILIO = "sip:127.0.0.1:5060"


@pytest.fixture(scope="module")
def rtpengine() -> Iterator[RtpengineServer]:
    if rtpengine_binary() is None:
        pytest.fail("rtpengine is not installed: `make apt` installs rtpengine-daemon")
    server = RtpengineServer().start()
    yield server
    server.stop()


def media_stack(
    tmp: Path, redis_url: str, rtpengine: RtpengineServer, **agent_api: Any
) -> AgentStack:
    stack = AgentStack(tmp, redis_url, live_digit_count=False)
    data: Any = stack.config.raw
    s = rtpengine.settings
    data["services"]["rtpengine"] = {"ng_host": "127.0.0.1", "ng_port": s.ng_port,
                                     "port_min": s.port_min, "port_max": s.port_max}  # fmt: skip
    data["services"]["esl"].setdefault("return", {})["proxy"] = KAMAILIO
    data["merchants"]["acme"]["agent_api"].update(agent_api)
    stack.config = parse_config(data, base_dir=tmp, path=tmp / "payivr.yaml")
    settings, stack.tokens = load_agent_settings(stack.config, {})
    stack.settings = dataclasses.replace(stack.settings, guided_merchants=settings.guided_merchants)
    return stack.start()


def dial_variables(dial: str) -> dict[str, str]:
    inside = dial[dial.index("{") + 1 : dial.index("}")]
    return dict(pair.split("=", 1) for pair in inside.split(","))


def create_rtpengine_call(rtpengine: RtpengineServer, call_id: str) -> None:
    """What Kamailio does for the agent leg's INVITE and 200 (offer, answer)."""

    async def go() -> None:
        ng = NgClient("127.0.0.1", rtpengine.ng_port)
        await MediaCall(ng, call_id, free_port(socket.SOCK_DGRAM)).setup()
        ng.close()

    asyncio.run(go())


def wait_bridge(fake: Any) -> str:
    for _ in range(500):
        if fake.bridge is not None:
            return str(fake.bridge[0])
        asyncio.run(asyncio.sleep(0.01))
    raise TimeoutError("no bridge")


def blocks(rtpengine: RtpengineServer, call_id: str) -> list[str]:
    """rtpengine's own log of block/unblock commands for this call, in order."""
    pattern = re.compile(r"Received command '((?:un)?block DTMF)'")
    return [m.group(1) for line in rtpengine.log_text().splitlines()
            if call_id in line and (m := pattern.search(line))]  # fmt: skip


def test_payments_mask_in_rtpengine_and_the_agent_hears_the_caller(
    tmp_path: Path, redis_url: str, rtpengine: RtpengineServer, caplog: pytest.LogCaptureFixture
) -> None:
    stack = media_stack(tmp_path, redis_url, rtpengine)
    try:
        fake, done = stack.call([Keys(CARD_OK + "#"), Keys(EXPIRY), Keys(CVV)] * 2)
        dial = wait_bridge(fake)
        variables = dial_variables(dial)
        assert dial.endswith(f";fs_path={KAMAILIO}")
        assert variables["sip_h_X-Payivr-Leg"] == "agent"
        agent_call_id = variables["sip_invite_call_id"]
        create_rtpengine_call(rtpengine, agent_call_id)
        call = stack.find_call(agent="1001")
        sse = SseReader(stack, call["call"])
        for order in ("A1001", "A1002"):
            payment = start_payment(stack, call["call"], order)
            result = sse.wait(
                lambda e, p=payment: e["type"] == "payment.result" and e["payment"] == p
            )
            assert result["result"]["result"] == "approved"
        assert blocks(rtpengine, agent_call_id) == ["block DTMF", "unblock DTMF"] * 2
        # rtpengine masked: the caller was never muted towards the agent.
        assert b"uuid_audio" not in fake.received
        assert fake.drop_dtmf is None and not fake.agent_muted
        stack.on_loop(fake.hang_up_now)
        done.result(10)
        assert_no_card_data(caplog.text, rtpengine.log_text(), stack.redis_dump(),
                            "\n".join(sse.raw))  # fmt: skip
    finally:
        stack.close()


def test_without_rtpengine_masking_the_caller_is_muted_instead(
    tmp_path: Path, redis_url: str, rtpengine: RtpengineServer
) -> None:
    """rtpengine does not know the call (Kamailio did not put it there): no card
    tone may reach the agent, so FreeSWITCH mutes the caller towards the agent."""
    stack = media_stack(tmp_path, redis_url, rtpengine)
    try:
        fake, done = stack.call([Keys(CARD_OK + "#"), Keys(EXPIRY), Keys(CVV)])
        wait_bridge(fake)
        call = stack.find_call(agent="1001")
        sse = SseReader(stack, call["call"])
        payment = start_payment(stack, call["call"], "A1001")
        sse.wait(lambda e: e["type"] == "payment.result" and e["payment"] == payment)
        assert b"uuid_audio" in fake.received and b"start write mute 1" in fake.received
        assert fake.ear.inband == []
        assert not fake.agent_muted  # and unmuted after
        stack.on_loop(fake.hang_up_now)
        done.result(10)
    finally:
        stack.close()


def test_agent_guided_callers_hear_no_prompt_and_the_fields_still_run(
    tmp_path: Path, redis_url: str, rtpengine: RtpengineServer
) -> None:
    stack = media_stack(tmp_path, redis_url, rtpengine, caller_prompts="agent-guided")
    try:
        fake, done = stack.call([Keys(CARD_OK + "#"), Keys(EXPIRY), Keys(CVV)])
        wait_bridge(fake)
        call = stack.find_call(agent="1001")
        sse = SseReader(stack, call["call"])
        payment = start_payment(stack, call["call"], "A1001")
        result = sse.wait(lambda e: e["type"] == "payment.result" and e["payment"] == payment)
        assert result["result"]["result"] == "approved"
        wire = fake.received.decode("utf-8", "replace")
        # The three fields ran (each opened, keyed, closed), with no prompt at all.
        assert wire.count("uuid_setvar " + fake.uuid + " payivr_field ") == 3
        assert fake.displaced == [] and "uuid_displace" not in wire
        assert set(fake.bridged_apps) == {"bind_digit_action", "clear_digit_action"}
        stack.on_loop(fake.hang_up_now)
        done.result(10)
    finally:
        stack.close()


def test_caller_prompts_is_validated(tmp_path: Path, redis_url: str) -> None:
    stack = AgentStack(tmp_path, redis_url)
    data: Any = stack.config.raw
    data["merchants"]["acme"]["agent_api"]["caller_prompts"] = "whisper"
    config = parse_config(data, base_dir=tmp_path, path=tmp_path / "payivr.yaml")
    with pytest.raises(ConfigError, match="caller_prompts"):
        load_agent_settings(config, {})
