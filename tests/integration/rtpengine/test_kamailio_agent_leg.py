"""The agent's leg through Kamailio + a real rtpengine, SIPp as FreeSWITCH and as the agent.

SIPp "FreeSWITCH" (a dispatcher node) sends the agent leg's INVITE through Kamailio,
which puts its media through rtpengine (offer on the INVITE, answer on the 200);
SIPp "agent phone" answers with a UDP sink as its media. The caller's audio that
FreeSWITCH forwards is a pcap of espeak-ng speech with card digits both as RFC 2833
events and as in-band tones (100 ms each). payivr's AgentMedia blocks DTMF over the
ng protocol by Call-ID and label, exactly as the agent service does at a payment's
start, and unblocks it at the end.

During the payment the agent's sink must get the speech (most speech frames above
SPEECH_RMS) and no card digit: no RFC 2833 event at all, and no DTMF a Goertzel
detector can find in the audio. Afterwards events and tones reach the agent again.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path

from payivr.core.config import load_config
from payivr.kamailio.runner import running_kamailio
from payivr.kamailio.settings import Socket
from payivr.media.masking import AgentMedia
from payivr.media.ng import NgClient, NgError
from payivr.stack.rtp_pcap import EVENT_PT, PCMA_PT, decode_events, write_pcap
from payivr.stack.sipp import Sipp
from tests.integration.kamailio.conftest import require_kamailio_and_sipp
from tests.integration.kamailio.kamsupport import write_config
from tests.integration.rtpengine.audio import CallerAudio, alaw_decode, rms, speech_samples
from tests.integration.rtpengine.call import AgentSink
from tests.integration.rtpengine.server import RtpengineServer
from tests.support.dtmf_detector import detect, keys
from tests.support.servers import RedisServer, free_port

HERE = Path(__file__).parent
# rtpengine's own lines naming a DTMF event's code (LOG_DEBUG in 10.5).
DIGIT_LOG_LINE = re.compile(r"DTMF (event packet|DSP code event): event \d+")
SPEECH_RMS = 500.0  # a 20 ms frame louder than this is speech (espeak-ng at full scale)
MIN_SPEECH_KEPT = 0.8  # of the speech frames sent, at least this share reaches the agent
CARD = "4111111111111111"
LEAD_MS = 1000  # after the ACK, before the caller's audio: time to block DTMF
GAP_MS = 1500  # between the payment's audio and the audio after it


def caller_capture_audio() -> CallerAudio:
    """Speech, then the card in four groups, alternating in-band tones and RFC 2833."""
    speech = speech_samples()
    audio = CallerAudio()
    chunk = len(speech) // 5
    audio.speech(speech[:chunk])
    for n, start in enumerate(range(0, len(CARD), 4)):
        group = CARD[start : start + 4]
        if n % 2 == 0:
            audio.inband(group)
        else:
            audio.events(group)
        audio.speech(speech[chunk * (n + 1) : chunk * (n + 2)])
    return audio


def caller_after_audio() -> CallerAudio:
    audio = CallerAudio()
    audio.silence(200)
    audio.events("98")
    audio.inband("76")
    audio.silence(300)
    return audio


def scenario(name: str, workdir: Path, **values: object) -> Path:
    text = (HERE / "sipp" / name).read_text()
    for key, value in values.items():
        text = text.replace(key, str(value))
    path = workdir / name
    path.write_text(text)
    return path


def with_rtpengine(config_path: Path, rtpengine: RtpengineServer) -> Path:
    s = rtpengine.settings
    text = config_path.read_text().replace(
        "services:\n",
        f"services:\n  rtpengine: {{ng_host: 127.0.0.1, ng_port: {s.ng_port}, "
        f"interface: 127.0.0.1, port_min: {s.port_min}, port_max: {s.port_max}}}\n",
        1,
    )
    config_path.write_text(text)
    return config_path


async def wait_for_call(ng: NgClient, call_id: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            answer = await ng.request("query", **{"call-id": call_id})
        except NgError:
            answer = {}
        if b"payivr-agent" in repr(answer).encode():  # the answer has been seen
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"rtpengine never saw the agent's answer for {call_id}")


def test_agent_hears_speech_and_no_card_digit(
    rtpengine: RtpengineServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    require_kamailio_and_sipp()
    capture, after = caller_capture_audio(), caller_after_audio()
    # The pcaps and the detector agree on what was sent (the detector works).
    assert keys(detect([s for p in capture.packets if p.payload_type == PCMA_PT
                   for s in alaw_decode(p.payload)])) == capture.inband_digits  # fmt: skip
    assert sorted(capture.inband_digits + capture.event_digits) == sorted(CARD)
    write_pcap(tmp_path / "capture.pcap", capture.packets)
    write_pcap(tmp_path / "after.pcap", after.packets)
    capture_ms = int(capture.duration_s * 1000) + GAP_MS
    after_ms = int(after.duration_s * 1000) + 500

    fs_port, agent_sip_port, kam_port = free_port(), free_port(), free_port()
    config = load_config(
        with_rtpengine(
            write_config(
                tmp_path / "cfg", redis_url=redis_server.url, nodes=[f"sip:127.0.0.1:{fs_port}"]
            ),
            rtpengine,
        )
    )
    sink = AgentSink()
    call_id = f"agentleg-{int(time.time() * 1000)}@fs.test"
    agent = Sipp("agent-phone", ["-sf", str(scenario("uas-agent-phone.xml", tmp_path,
                 AGENT_MEDIA_PORT=sink.port)), "-p", str(agent_sip_port), "-m", "1",
                 "-mp", str(free_port(socket.SOCK_DGRAM)), "-timeout", "90s", "-timeout_error"],
                 tmp_path)  # fmt: skip
    freeswitch = Sipp("freeswitch", [f"127.0.0.1:{kam_port}", "-sf", str(scenario(
        "uac-freeswitch-agent-leg.xml", tmp_path, AGENT_SIP_PORT=agent_sip_port,
        PCAP_CAPTURE=tmp_path / "capture.pcap", PCAP_AFTER=tmp_path / "after.pcap",
        LEAD_MS=LEAD_MS, CAPTURE_MS=capture_ms, AFTER_MS=after_ms)), "-p", str(fs_port),
        "-aa", "-m", "1", "-cid_str", call_id, "-mp", str(free_port(socket.SOCK_DGRAM)),
        "-timeout", "90s", "-timeout_error"], tmp_path)  # fmt: skip

    async def drive() -> tuple[float, float]:
        ng = NgClient("127.0.0.1", rtpengine.ng_port)
        media = AgentMedia(ng, rtpengine.settings)
        await wait_for_call(ng, call_id)
        answered = time.monotonic()
        await media.mask(call_id)  # the payment starts
        await asyncio.sleep(LEAD_MS / 1000 + capture.duration_s + GAP_MS / 2000)
        await media.unmask(call_id)  # the payment's result
        unmasked = time.monotonic()
        ng.close()
        return answered, unmasked

    with running_kamailio(
        config,
        listen=(Socket("udp", "127.0.0.1", kam_port),),
        runtime_dir=tmp_path / "kamailio",
        children=2,
        ds_ping_interval_s=60,
    ) as kamailio:
        agent.start()
        freeswitch.start()
        try:
            answered, unmasked = asyncio.run(drive())
            assert freeswitch.wait(60) == 0, freeswitch.explain()
            assert agent.wait(10) == 0, agent.explain()
        finally:
            freeswitch.stop()
            agent.stop()
            sink.close()
        kamailio_log = kamailio.log_path.read_text(errors="replace")

    assert agent.text(agent.log).split() == ["leg-header="], "Kamailio must remove X-Payivr-Leg"
    during = [p for p in sink.packets if p.at < unmasked]
    later = [p for p in sink.packets if p.at > unmasked + 0.1]
    assert during and later, "the agent's sink received no RTP"
    assert min(p.at for p in during) > answered

    # During the payment: speech yes, card digits in no form.
    events = decode_events((p.payload_type, p.timestamp, p.payload) for p in during)
    assert [p for p in during if p.payload_type == EVENT_PT] == [], (
        f"events reached the agent: {len(events)}"
    )
    audio = [s for p in during if p.payload_type == PCMA_PT for s in alaw_decode(p.payload)]
    assert keys(detect(audio)) == ""
    frames = [audio[i : i + 160] for i in range(0, len(audio) - 159, 160)]
    sent_speech = sum(1 for f in capture.speech_frames if rms(f) > SPEECH_RMS)
    heard = sum(1 for f in frames if rms(f) > SPEECH_RMS)
    assert heard >= MIN_SPEECH_KEPT * sent_speech, (heard, sent_speech)

    # After it: DTMF reaches the agent again, as events and as tones.
    assert decode_events((p.payload_type, p.timestamp, p.payload) for p in later) == "98"
    after_audio = [s for p in later if p.payload_type == PCMA_PT for s in alaw_decode(p.payload)]
    assert keys(detect(after_audio)) == "76"

    # No card digit in rtpengine's log (nor Kamailio's): at its configured level
    # rtpengine writes no DTMF event line (at debug it would: test_rtpengine_facts).
    for text in (rtpengine.log_text(), kamailio_log):
        assert CARD not in text and CARD[:6] not in text
        assert DIGIT_LOG_LINE.search(text) is None
