"""What rtpengine 10.5 (Debian's rtpengine-daemon) does with `block DTMF`: the facts
payivr's masking rests on (payivr.media.masking, payivr.media.settings), each pinned
against the real daemon, userspace, loopback. Signalling as Kamailio does it (the
same offer/answer flags), media sent and received by the test.
"""

from __future__ import annotations

import asyncio
import re
import socket
import statistics
import time
from collections.abc import Mapping

import pytest

from payivr.media.masking import UNBLOCK_PARAMS, block_params
from payivr.media.ng import NgClient, NgError
from payivr.media.sdp import FS_LABEL
from payivr.media.settings import RtpengineSettings
from payivr.stack.rtp_pcap import EVENT_PT, PCMA_PT, decode_events
from tests.integration.rtpengine.audio import CallerAudio, alaw_decode, rms, speech_samples
from tests.integration.rtpengine.call import MediaCall, Received, beep, measure_onsets, send_stream
from tests.integration.rtpengine.server import RtpengineServer
from tests.support.dtmf_detector import detect, keys
from tests.support.servers import free_port

Params = Mapping[str, str | int | list[str]]
SPEECH_RMS = 500.0


def keyed_audio() -> CallerAudio:
    speech = speech_samples()
    audio = CallerAudio()
    audio.speech(speech[:6000])
    audio.inband("4111")
    audio.speech(speech[6000:12000])
    audio.events("5555")
    audio.speech(speech[12000:18000])
    return audio


def run(rtpengine: RtpengineServer, audio: CallerAudio, block: Params | None,
        name: str) -> list[Received]:  # fmt: skip
    """One call through rtpengine; what the agent's side received."""

    async def go() -> list[Received]:
        ng = NgClient("127.0.0.1", rtpengine.ng_port)
        call_id = f"{name}-{time.monotonic_ns()}"
        caller_port = free_port(socket.SOCK_DGRAM)
        call = MediaCall(ng, call_id, caller_port)
        await call.setup()
        if block is not None:
            await ng.request("block DTMF", **{"call-id": call_id, "label": FS_LABEL, **block})
        await asyncio.to_thread(send_stream, audio.packets, caller_port, call.from_caller_port)
        await asyncio.sleep(0.4)
        await call.delete()
        ng.close()
        return call.sink.packets

    return asyncio.run(go())


def audio_of(packets: list[Received]) -> list[int]:
    return [s for p in packets if p.payload_type == PCMA_PT for s in alaw_decode(p.payload)]


def events_of(packets: list[Received]) -> str:
    return decode_events((p.payload_type, p.timestamp, p.payload) for p in packets)


def speech_kept(audio: CallerAudio, packets: list[Received]) -> float:
    samples = audio_of(packets)
    frames = [samples[i : i + 160] for i in range(0, len(samples) - 159, 160)]
    sent = sum(1 for f in audio.speech_frames if rms(f) > SPEECH_RMS)
    return sum(1 for f in frames if rms(f) > SPEECH_RMS) / sent


def params(mode: str, delay_ms: int) -> dict[str, str | int | list[str]]:
    return block_params(RtpengineSettings(dtmf_security=mode, delay_buffer_ms=delay_ms))


def test_unmasked_the_agent_gets_every_digit(rtpengine: RtpengineServer) -> None:
    audio = keyed_audio()
    got = run(rtpengine, audio, None, "plain")
    assert keys(detect(audio_of(got))) == "4111"
    assert events_of(got) == "5555"


@pytest.mark.parametrize(("mode", "delay_ms"), [("silence", 40), ("silence", 60), ("tone", 60)])
def test_masked_no_digit_of_either_kind_and_speech_kept(
    rtpengine: RtpengineServer, mode: str, delay_ms: int
) -> None:
    audio = keyed_audio()
    got = run(rtpengine, audio, params(mode, delay_ms), f"mask-{mode}-{delay_ms}")
    assert [p for p in got if p.payload_type == EVENT_PT] == []
    assert keys(detect(audio_of(got))) == ""
    if mode == "silence":  # `tone` adds its own loud frames: speech share is meaningless
        assert speech_kept(audio, got) >= 0.8


def test_without_delay_buffer_tones_pass_and_events_become_audible(
    rtpengine: RtpengineServer,
) -> None:
    """The pitfall: silence without a delay buffer changes nothing in the audio, and
    the blocked RFC 4733 events come out as in-band tones."""
    audio = keyed_audio()
    block = {k: v for k, v in params("silence", 60).items() if k != "delay-buffer"}
    got = run(rtpengine, audio, block, "nodelay")
    assert [p for p in got if p.payload_type == EVENT_PT] == []
    assert keys(detect(audio_of(got))) == "41115555"


def test_zero_mode_turns_inband_digits_into_real_events(rtpengine: RtpengineServer) -> None:
    """Why `zero` is refused by payivr's settings: in-band digits leave as RFC 4733
    events carrying the real digit."""
    audio = keyed_audio()
    got = run(rtpengine, audio, params("zero", 60), "zero")
    assert "4111" in events_of(got)


def test_detect_flag_must_be_in_the_block_message(rtpengine: RtpengineServer) -> None:
    """Without `detect-DTMF` in `block DTMF` itself, in-band tones pass."""
    audio = keyed_audio()
    block = {k: v for k, v in params("silence", 60).items() if k != "flags"}
    got = run(rtpengine, audio, block, "noflag")
    assert "4111" in keys(detect(audio_of(got)))


def onset_delay_ms(rtpengine: RtpengineServer, steps: list[Params | None]) -> list[float]:
    """The median caller->agent delay (ms) of a speech onset, per step: each step
    applies its ng parameters (block DTMF, unblock DTMF, or nothing) then sends."""
    burst = beep()

    async def go() -> list[float]:
        ng = NgClient("127.0.0.1", rtpengine.ng_port)
        call_id = f"delay-{time.monotonic_ns()}"
        caller_port = free_port(socket.SOCK_DGRAM)
        call = MediaCall(ng, call_id, caller_port)
        await call.setup()
        result = []
        for step in steps:
            if step is not None:
                command = "block DTMF" if "DTMF-security" in step else "unblock DTMF"
                await ng.request(command, **{"call-id": call_id, "label": FS_LABEL, **step})
            audio = CallerAudio()
            for _ in range(6):
                audio.silence(300)
                audio.speech(burst)
            delays = await asyncio.to_thread(measure_onsets, call, caller_port, audio)
            result.append(statistics.median(delays))
        await call.delete()
        ng.close()
        return result

    return asyncio.run(go())


def test_unblock_keeps_the_delay_unless_delay_buffer_zero(rtpengine: RtpengineServer) -> None:
    block = params("silence", 150)
    plain, blocked, unblocked_keeping, unblocked = onset_delay_ms(
        rtpengine, [None, block, {}, None]
    )
    # The last step: block again, then unblock with delay-buffer 0 (payivr's unmask).
    (_, _, back) = onset_delay_ms(rtpengine, [block, dict(UNBLOCK_PARAMS), None])
    assert 120 < blocked - plain < 200  # the 150 ms buffer is the added delay
    assert unblocked_keeping - plain > 120  # `unblock DTMF` alone keeps the buffer
    assert unblocked - plain > 120
    assert back - plain < 30


def test_log_levels_and_dtmf(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """At debug (7) rtpengine logs each DTMF event's code; at payivr's maximum (6) not."""
    digit_line = re.compile(r"DTMF (event packet|DSP code event): event \d+")
    audio = keyed_audio()
    for level, expect in ((7, True), (6, False)):
        server = RtpengineServer(workdir=tmp_path / str(level), log_level=level)
        (tmp_path / str(level)).mkdir()
        server.start()
        try:
            run(server, audio, params("silence", 60), f"log{level}")
        finally:
            server.stop()
        assert (digit_line.search(server.log_text()) is not None) is expect, level


def test_ng_errors_are_explicit(rtpengine: RtpengineServer) -> None:
    async def go() -> None:
        ng = NgClient("127.0.0.1", rtpengine.ng_port)
        with pytest.raises(NgError, match="Unknown call-ID"):
            await ng.request("block DTMF", **{"call-id": "no-such-call", "label": FS_LABEL})
        ng.close()
        silent = NgClient("127.0.0.1", free_port(socket.SOCK_DGRAM), timeout_s=0.1, tries=2)
        with pytest.raises(NgError, match="no answer"):
            await silent.request("ping")
        silent.close()

    asyncio.run(go())
