"""Caller and agent keep talking while the card is keyed: a real FreeSWITCH, the
agent's leg through Kamailio and rtpengine (the set-up of
test_freeswitch_agent_rtpengine.py), skipped with the reason without FreeSWITCH.

The caller speaks all the time (espeak-ng speech) and keys two payments' fields as
RFC 2833 events in the gaps of the speech. The merchant uses the agent-guided style,
so each field opens as soon as the previous one ends and the timing is the caller's.
While each card field is open (from its `waiting` to its `valid` progress event) the
agent's RTP sink must receive the caller's speech: frames louder than SPEECH_RMS,
counted in that window, against those the caller sent then. A suspended bridge (an
application on the caller's leg, as payivr ran before) gives none, so the count
fails it. During each payment the agent gets no RFC 2833 event and no tone the
detector finds; both payments are approved; the card is in no log nor in Redis.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from pathlib import Path

import pytest

from payivr.kamailio.runner import running_kamailio
from payivr.kamailio.settings import Socket
from payivr.stack.rtp_pcap import EVENT_PT, PCMA_PT, decode_events, write_pcap
from tests.agent.harness import AgentStack, SseReader
from tests.agent.test_freeswitch_agent import (
    HERE,
    PAN,
    RtpSink,
    pytestmark,  # noqa: F401 (the same skips: FreeSWITCH, SIPp)
    start_freeswitch,
)
from tests.agent.test_freeswitch_agent_rtpengine import media_config
from tests.integration.rtpengine.audio import CallerAudio, alaw_decode, rms, speech_samples
from tests.integration.rtpengine.server import RtpengineServer, rtpengine_binary
from tests.support.dtmf_detector import alaw_samples, detect
from tests.support.servers import free_port, stop_process

SPEECH_RMS = 500.0  # a 20 ms frame louder than this is speech (espeak-ng at full scale)
MIN_SPEECH_SHARE = 0.5  # of the speech frames sent while the field is open
EXPIRY, CVV = "1230", "123"
PAYMENT_AT_S = (3.0, 15.0)  # where each payment's keys start in the caller's audio


def caller_audio() -> CallerAudio:
    """Speech throughout; at PAYMENT_AT_S the fields' keys, 4 at a time, between speech."""
    speech = speech_samples()
    audio = CallerAudio()
    at = 0

    def talk(seconds: float) -> None:
        nonlocal at
        n = int(8000 * seconds)
        chunk: list[int] = []
        while len(chunk) < n:
            take = min(n - len(chunk), len(speech) - at)
            chunk += speech[at : at + take]
            at = (at + take) % len(speech)
        audio.speech(chunk)

    for start in PAYMENT_AT_S:
        talk(start - audio.duration_s)
        keys = PAN + "#" + EXPIRY + CVV
        for i in range(0, len(keys), 4):
            audio.events(keys[i : i + 4])
            talk(0.8)
    talk(27.0 - audio.duration_s)
    audio.events("5")
    talk(0.5)
    return audio


def test_caller_and_agent_talk_while_the_card_is_keyed(tmp_path: Path, redis_url: str) -> None:
    if rtpengine_binary() is None:
        pytest.fail("rtpengine is not installed: `make apt` installs rtpengine-daemon")
    rtpengine = RtpengineServer(workdir=tmp_path / "rtpengine-run")
    (tmp_path / "rtpengine-run").mkdir()
    rtpengine.start()
    stack = AgentStack(tmp_path, redis_url)
    sip_port, es_port, kam_port = free_port(), free_port(), free_port()
    media_config(stack, tmp_path, rtpengine, kam_port, sip_port, caller_prompts="agent-guided")
    stack.start()
    fs = start_freeswitch(tmp_path, stack, sip_port, es_port)
    sink = RtpSink()
    procs: list[subprocess.Popen[bytes]] = []
    audio = caller_audio()
    pcap = write_pcap(tmp_path / "caller.pcap", audio.packets)
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
            uas = (
                (HERE / "sipp" / "uas-agent-sink-takes-info.xml").read_text()
                .replace('<recv request="INVITE"/>', '<recv request="INVITE" rrs="true"/>')
                .replace("[last_CSeq:]\nContact", "[last_CSeq:]\n[last_Record-Route:]\nContact", 1)
                .replace("SINK_PORT", str(sink.port))
            )  # fmt: skip
            (tmp_path / "uas.xml").write_text(uas)
            uac = (
                (HERE / "sipp" / "uac-agent-trunk-keys-then-bye.xml").read_text()
                .replace("SESSION_ID", session_id)
                .replace("AGENT_URI", f"sip:1001@127.0.0.1:{agent_port}")
                .replace("PCAP", str(pcap))
                .replace("PAUSE_MS", "28500")
            )  # fmt: skip
            (tmp_path / "uac.xml").write_text(uac)
            common = ["-i", "127.0.0.1", "-t", "u1", "-nostdin", "-m", "1", "-trace_err"]
            procs.append(subprocess.Popen(
                ["sipp", "-sf", "uas.xml", "-p", str(agent_port), *common, "-error_file",
                 "uas.err", "-trace_msg", "-message_file", "agent_msgs.log"],
                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
            procs.append(subprocess.Popen(
                ["sipp", f"127.0.0.1:{sip_port}", "-sf", "uac.xml", "-p", str(free_port()),
                 "-mp", str(free_port(socket.SOCK_DGRAM)), *common, "-error_file", "uac.err",
                 "-timeout", "80s"],
                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
            call = stack.find_call(agent="1001", timeout=15)
            answered = time.monotonic()
            sse = SseReader(stack, call["call"])
            fields: list[tuple[float, float]] = []  # each card field's open window
            payments: list[tuple[float, float]] = []
            for order in ("C8001", "C8002"):
                body = {"operation": "sale", "order": order, "amount": 1250}
                r = stack.api("POST", f"/v1/calls/{call['call']}/payments", body=body)
                assert r.status_code == 202, r.text
                payment = r.json()["payment"]
                sse.wait(lambda e, p=payment: e["type"] == "payment.started"
                         and e["payment"] == p, 5)  # fmt: skip
                started = time.monotonic()
                result = sse.wait(lambda e, p=payment: e["type"] == "payment.result"
                                  and e["payment"] == p, 20)  # fmt: skip
                payments.append((started, time.monotonic()))
                assert result["result"]["result"] == "approved", result
                card = [
                    (t, e)
                    for t, e in zip(sse.received_at, sse.events, strict=True)
                    if e.get("payment") == payment and e.get("field") == "card_number"
                ]
                opened = next(t for t, e in card if e["status"] == "waiting")
                closed = next(t for t, e in card if e["status"] == "valid")
                fields.append((opened, closed))
            assert procs[1].wait(60) == 0, (tmp_path / "uac.err").read_text(errors="replace")
            kamailio_log = kamailio.log_path.read_text(errors="replace")

        assert sink.packets, "no RTP reached the agent through rtpengine"
        sent_speech = [
            (answered + p.time_s, rms(alaw_decode(p.payload)) > SPEECH_RMS)
            for p in audio.packets if p.payload_type == PCMA_PT
        ]  # fmt: skip
        for n, ((opened, closed), (started, ended)) in enumerate(
            zip(fields, payments, strict=True), 1
        ):
            # Keys are keyed from PAYMENT_AT_S on; the field stays open until "#".
            got = [p for t, pt, _, p in sink.packets
                   if pt == PCMA_PT and opened <= t <= closed]  # fmt: skip
            loud = sum(1 for p in got if rms(alaw_decode(p)) > SPEECH_RMS)
            sent = sum(1 for t, is_speech in sent_speech if is_speech and opened <= t <= closed)
            print(f"payment {n}: card field open {closed - opened:.1f} s, speech frames "
                  f"sent {sent}, received by the agent {loud} ({loud / max(sent, 1):.0%}), "
                  f"audio packets {len(got)}")  # fmt: skip
            assert sent > 50, "the caller spoke while the field was open"
            assert loud >= MIN_SPEECH_SHARE * sent, "the agent heard the caller during the field"
            during = sink.between(started, ended)
            assert [p for p in during if p[0] == EVENT_PT] == [], "an event reached the agent"
            assert detect(alaw_samples([p for pt, _, p in during if pt == PCMA_PT])) == []
        after = sink.between(payments[-1][1], time.monotonic())
        assert "5" in decode_events([p for p in after if p[0] == EVENT_PT]), "DTMF flows again"
        for text in (
            (tmp_path / "fs" / "freeswitch.out").read_text(errors="replace"),
            (tmp_path / "fs" / "log" / "freeswitch.log").read_text(errors="replace"),
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
