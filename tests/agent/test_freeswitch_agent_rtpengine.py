"""Agent mode with a real FreeSWITCH, the agent's leg through Kamailio and rtpengine.

SIPp caller -> FreeSWITCH (payivr's rendered config, the agent service on its
outbound socket) -> the agent's leg dialled through Kamailio (`fs_path`,
`X-Payivr-Leg: agent`) -> rtpengine -> SIPp agent with an RTP sink. Two payments on
the same call, each cancelled by the agent after the caller keyed the card; then a
key after the payments. Skipped with the reason where FreeSWITCH is not installed.

What it proves: the agent's leg really runs through Kamailio (offer/answer) and
rtpengine, payivr blocks DTMF there at each payment's start and unblocks it at its
result (rtpengine's own log), the agent's RTP carries no RFC 2833 event and no DTMF
tone energy during the payments, the caller's audio arrives outside them, DTMF
reaches the agent again after them, and the card number is in no log (FreeSWITCH's,
Kamailio's, rtpengine's) nor in Redis. Speech reaching the agent while a field is
open is tests/agent/test_freeswitch_agent_conversation.py.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from payivr.agent.settings import load_agent_settings
from payivr.core.config import parse_config
from payivr.kamailio.runner import running_kamailio
from payivr.kamailio.settings import Socket
from payivr.stack.rtp_pcap import EVENT_PT, PCMA_PT, Keying, decode_events, keyed_call
from tests.agent.harness import AgentStack, SseReader
from tests.agent.test_freeswitch_agent import (
    PAN,
    RtpSink,
    pytestmark,  # noqa: F401 (the same skips: FreeSWITCH, SIPp)
    start_agent_call,
    start_freeswitch,
)
from tests.integration.rtpengine.server import RtpengineServer, rtpengine_binary
from tests.support.dtmf_detector import alaw_samples, detect
from tests.support.servers import free_port, stop_process


def media_config(stack: AgentStack, tmp: Path, rtpengine: RtpengineServer, kam_port: int,
                 sip_port: int, caller_prompts: str = "spoken") -> None:  # fmt: skip
    data: Any = yaml.safe_load(yaml.safe_dump(dict(stack.config.raw)))
    s = rtpengine.settings
    data["secrets_file"] = str(tmp / "secrets.yaml")
    data["services"]["rtpengine"] = {"ng_host": "127.0.0.1", "ng_port": s.ng_port,
                                     "port_min": s.port_min, "port_max": s.port_max}  # fmt: skip
    data["services"]["esl"].setdefault("return", {})["proxy"] = f"sip:127.0.0.1:{kam_port}"
    data["services"]["freeswitch_nodes"] = [f"sip:127.0.0.1:{sip_port}"]
    data["services"]["kamailio"]["listen"] = [{"proto": "udp", "host": "127.0.0.1",
                                               "port": kam_port}]  # fmt: skip
    data["merchants"]["acme"]["agent_api"]["caller_prompts"] = caller_prompts
    path = tmp / "payivr.yaml"
    path.write_text(yaml.safe_dump(data))
    stack.config = parse_config(data, base_dir=tmp, path=path)
    settings, stack.tokens = load_agent_settings(stack.config, {})
    stack.settings = dataclasses.replace(
        settings, listen_port=stack.settings.listen_port,
        esl_listen_port=stack.settings.esl_listen_port,
    )  # fmt: skip


def test_two_payments_through_rtpengine_with_a_real_freeswitch(
    tmp_path: Path, redis_url: str
) -> None:
    if rtpengine_binary() is None:
        pytest.fail("rtpengine is not installed: `make apt` installs rtpengine-daemon")
    rtpengine = RtpengineServer(workdir=tmp_path / "rtpengine-run")
    (tmp_path / "rtpengine-run").mkdir()
    rtpengine.start()
    stack = AgentStack(tmp_path, redis_url)
    sip_port, es_port, kam_port = free_port(), free_port(), free_port()
    media_config(stack, tmp_path, rtpengine, kam_port, sip_port)
    stack.start()
    fs = start_freeswitch(tmp_path, stack, sip_port, es_port)
    sink = RtpSink()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with running_kamailio(stack.config, listen=(Socket("udp", "127.0.0.1", kam_port),),
                              runtime_dir=tmp_path / "kamailio", children=2,
                              ds_ping_interval_s=60) as kamailio:  # fmt: skip
            session_id = secrets.token_urlsafe(16)
            stack.redis.hset(
                f"payivr:session:{session_id}",
                mapping={"id": session_id, "merchant": "acme", "mode": "agent"},
            )
            agent_port = free_port()
            pcap = keyed_call(
                tmp_path / "caller.pcap",
                [Keying(6.0, PAN + "#"), Keying(17.5, PAN + "#"), Keying(26.0, "5")],
                tail_s=2.0,
            )
            procs += start_agent_call(
                tmp_path,
                sip_port=sip_port,
                agent_port=agent_port,
                sink_port=sink.port,
                session_id=session_id,
                pcap=pcap,
                pause_ms=28500,
                timeout_s=80,
                record_route=True,
            )
            call = stack.find_call(agent="1001", timeout=15)
            answered = time.monotonic()
            sse = SseReader(stack, call["call"])
            windows: list[tuple[float, float]] = []
            # The SIPp agent sends no RTP: FreeSWITCH ends its leg on media timeout at
            # 30 s, so the whole call fits in 28.5 s.
            for order, cancel_at in (("F7001", 11.5), ("F7002", 23.5)):
                r = stack.api(
                    "POST",
                    f"/v1/calls/{call['call']}/payments",
                    body={"operation": "sale", "order": order, "amount": 1250},
                )
                assert r.status_code == 202, r.text
                payment = r.json()["payment"]
                sse.wait(lambda e, p=payment: e["type"] == "payment.started"
                         and e["payment"] == p, 5)  # fmt: skip
                guard_on = time.monotonic()
                time.sleep(max(0.0, answered + cancel_at - time.monotonic()))
                cancel = stack.api("POST", f"/v1/calls/{call['call']}/payments/{payment}/cancel")
                assert cancel.status_code == 202, cancel.text
                result = sse.wait(lambda e, p=payment: e["type"] == "payment.result"
                                  and e["payment"] == p, 15)  # fmt: skip
                windows.append((guard_on, time.monotonic()))
                assert result["result"]["reason"] == "cancelled-by-agent"
            assert procs[1].wait(60) == 0, (tmp_path / "uac.err").read_text(errors="replace")
            kamailio_log = kamailio.log_path.read_text(errors="replace")

        assert sink.packets, "no RTP reached the agent through rtpengine"
        # payivr blocked DTMF in rtpengine for each payment and unblocked it at its result.
        commands = re.findall(r"Received command '((?:un)?block DTMF)'", rtpengine.log_text())
        assert commands == ["block DTMF", "unblock DTMF"] * 2
        for start, end in windows:
            during = sink.between(start, end)
            assert [p for p in during if p[0] == EVENT_PT] == [], "an event reached the agent"
            assert detect(alaw_samples([p for pt, _, p in during if pt == PCMA_PT])) == []
        last = windows[-1][1]
        outside = [p for t, pt, _, p in sink.packets if pt == PCMA_PT
                   and not any(a <= t <= b for a, b in windows)]  # fmt: skip
        assert len(outside) > 100, "audio reached the agent outside the payments"
        after = sink.between(last, time.monotonic())
        assert "5" in decode_events([p for p in after if p[0] == EVENT_PT]), "DTMF flows again"
        for text in (
            (tmp_path / "fs" / "freeswitch.out").read_text(errors="replace"),
            kamailio_log,
            rtpengine.log_text(),
            stack.redis_dump(),
            (tmp_path / "agent_msgs.log").read_text(errors="replace"),
        ):
            assert PAN not in text and PAN[:12] not in text
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)
        sink.close()
        stop_process(fs, grace_s=15)
        stack.close()
        rtpengine.stop()
