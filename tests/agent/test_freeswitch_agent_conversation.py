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

The call is recorded on the caller's leg (`uuid_record ... start`, both directions
mixed: the caller and what the caller hears, the agent included): over each card
field the recording is masked (no speech frame), elsewhere it keeps the speech.
Another event-socket client (`event plain ALL` and `uuid_dump` every 100 ms, as an
operator's fs_cli would) sees no DTMF event and no digit-action event; what it can
see of `last_matching_digits` (one key, for about one round trip) is counted.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

import pytest

from payivr.kamailio.runner import running_kamailio
from payivr.kamailio.settings import Socket
from payivr.stack.rtp_pcap import EVENT_PT, PCMA_PT, decode_events, write_pcap
from tests.agent.harness import AgentStack, SseReader
from tests.agent.test_freeswitch_agent import (
    PAN,
    RtpSink,
    pytestmark,  # noqa: F401 (the same skips: FreeSWITCH, SIPp)
    start_agent_call,
    start_freeswitch,
)
from tests.agent.test_freeswitch_agent_rtpengine import media_config
from tests.freeswitch.inbound import CallWatcher
from tests.integration.rtpengine.audio import CallerAudio, alaw_decode, rms, speech_samples
from tests.integration.rtpengine.server import RtpengineServer, rtpengine_binary
from tests.support.dtmf_detector import alaw_samples, detect, wav_samples
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
    watcher: CallWatcher | None = None
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
            es = stack.config.services.esl.event_socket
            watcher = CallWatcher(es_port, es.password.value()).__enter__()
            call = stack.find_call(agent="1001", timeout=15)
            answered = time.monotonic()
            sse = SseReader(stack, call["call"])
            recording = tmp_path / "fs" / "recordings" / "call.wav"
            started_rec = watcher_api(es_port, es.password.value(),
                                      f"uuid_record {call['call']} start {recording}")  # fmt: skip
            recorded_at = time.monotonic()
            assert started_rec.startswith("+OK"), started_rec
            time.sleep(1.5)  # some conversation on the recording before the first payment
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
            watcher.__exit__(None, None, None)
            watch, watcher = watcher.watch, None

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
        # The recording: masked over each card field, the speech kept elsewhere.
        samples = wav_samples(recording)
        frames = [samples[i : i + 160] for i in range(0, len(samples) - 159, 160)]

        def loud_frames(start: float, end: float) -> int:
            a, b = int((start - recorded_at) * 50), int((end - recorded_at) * 50)
            return sum(1 for f in frames[max(a, 0) : b] if rms(f) > SPEECH_RMS)

        for opened, closed in fields:
            # A frame's margin each side: the mask goes on before the field opens.
            masked = loud_frames(opened + 0.1, closed - 0.1)
            print(f"recording: {masked} speech frames over a card field")
            assert masked == 0, "the recording was not masked over the card field"
        kept = loud_frames(recorded_at, payments[0][0] - 0.1)
        after_rec = loud_frames(payments[1][1] + 0.2, recorded_at + len(frames) / 50)
        print(f"recording: {kept} speech frames before the payments, {after_rec} after them")
        assert kept > 20 and after_rec > 20, "the recording keeps the speech outside the card"
        # What another event-socket client could see.
        events = watch.events
        assert not [e for e in events if e.get("Event-Name") == "DTMF"], "a DTMF event leaked"
        assert not [e for e in events if "digits" in e or "payivr_key" in e]
        exposed = [d for d in (*events, *watch.dumps)
                   if d.get("variable_last_matching_digits")]  # fmt: skip
        print(f"another client saw last_matching_digits in {len(exposed)} of "
              f"{len(events)} events and {len(watch.dumps)} dumps")  # fmt: skip
        assert all(len(d["variable_last_matching_digits"]) == 1 for d in exposed)
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
        if watcher is not None:
            watcher.__exit__(None, None, None)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)
        sink.close()
        stop_process(fs, grace_s=15)
        stack.close()
        rtpengine.stop()


def watcher_api(port: int, password: str, command: str) -> str:
    from tests.freeswitch.inbound import InboundSocket

    api = InboundSocket(port, password)
    try:
        return api.api(command)
    finally:
        api.close()
