"""Benchmark: what masking card tones in rtpengine costs (issue 15).

A real rtpengine (Debian's rtpengine-daemon, userspace, loopback), set up per call
with the offer/answer flags payivr's Kamailio uses (payivr.media.sdp), PCMA 20 ms.

1. Delay on the caller -> agent path: tone bursts (400 Hz, not DTMF) after silence,
   the delay of each burst's onset from the caller's send to the agent's receive,
   on the same call without blocking and with `block DTMF` as payivr sends it
   (payivr.media.masking, the configured delay buffer). p50/p99 of each, ms.
2. rtpengine CPU per masked call: N calls at once, each masked (which puts the
   stream through rtpengine's decode -> DTMF DSP -> encode path, i.e. transcoding),
   caller audio of speech with in-band and RFC 2833 digits for --seconds; rtpengine's
   user+system CPU (from /proc) over that time, per call, and calls per core. The
   same with unmasked calls (plain relaying) for comparison.

Usage: .venv/bin/python bench/agent_media.py [--bursts 50] [--calls 50] [--seconds 10]
       [--delay-buffer-ms 60]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "pylib"), str(REPO)]

from payivr.media.masking import AgentMedia  # noqa: E402
from payivr.media.ng import NgClient  # noqa: E402
from payivr.media.sdp import ANSWER_FLAGS, OFFER_FLAGS  # noqa: E402
from payivr.media.settings import RtpengineSettings  # noqa: E402
from payivr.stack.rtp_pcap import RtpPacket  # noqa: E402
from tests.integration.rtpengine.audio import CallerAudio, speech_samples  # noqa: E402
from tests.integration.rtpengine.call import (  # noqa: E402
    MediaCall,
    beep,
    measure_onsets,
    media_port,
    sdp,
)
from tests.integration.rtpengine.server import RtpengineServer  # noqa: E402
from tests.support.servers import free_port  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def delays(server: RtpengineServer, media: AgentMedia, bursts: int) -> dict[str, list[float]]:
    ng = media.ng
    caller_port = free_port(socket.SOCK_DGRAM)
    call = MediaCall(ng, f"bench-delay-{time.monotonic_ns()}", caller_port)
    await call.setup()
    audio = CallerAudio()
    for _ in range(bursts):
        audio.silence(300)
        audio.speech(beep())
    plain = await asyncio.to_thread(measure_onsets, call, caller_port, audio)
    await media.mask(call.call_id)
    masked = await asyncio.to_thread(measure_onsets, call, caller_port, audio)
    await media.unmask(call.call_id)
    await call.delete()
    return {"unmasked": plain, "masked": masked}


def caller_stream(seconds: float) -> list[RtpPacket]:
    speech = speech_samples()
    audio = CallerAudio()
    while audio.duration_s < seconds:
        audio.speech(speech[:16000])
        audio.inband("4111")
        audio.events("1111")
    return audio.packets


async def cpu_per_call(
    server: RtpengineServer, media: AgentMedia, calls: int, seconds: float, masked: bool
) -> float:
    """rtpengine CPU seconds per call-second, `calls` calls streaming at once."""
    ng = media.ng
    tag = "masked" if masked else "plain"
    legs: list[tuple[socket.socket, socket.socket, int, str]] = []
    for n in range(calls):
        caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        caller.bind(("127.0.0.1", 0))
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))  # never read: the kernel drops what overflows
        call_id = f"bench-cpu-{tag}-{n}-{time.monotonic_ns()}"
        await ng.request(
            "offer",
            **{
                "call-id": call_id,
                "from-tag": "fs",
                "sdp": sdp(caller.getsockname()[1], "fs"),
                **OFFER_FLAGS,
            },
        )
        answer_port = media_port(
            await ng.request(
                "answer",
                **{
                    "call-id": call_id,
                    "from-tag": "fs",
                    "to-tag": "agent",
                    "sdp": sdp(sink.getsockname()[1], "agent"),
                    **ANSWER_FLAGS,
                },
            )
        )
        if masked:
            await media.mask(call_id)
        legs.append((caller, sink, answer_port, call_id))
    packets = caller_stream(seconds)
    before = server.cpu_seconds()
    start = time.monotonic()
    await asyncio.to_thread(send_all, packets, legs, start)
    elapsed = time.monotonic() - start
    used = server.cpu_seconds() - before
    for caller, sink, _, call_id in legs:
        await ng.request("delete", **{"call-id": call_id})
        caller.close()
        sink.close()
    return used / (calls * elapsed)


def send_all(
    packets: list[RtpPacket],
    legs: list[tuple[socket.socket, socket.socket, int, str]],
    start: float,
) -> None:
    for p in packets:
        delay = start + p.time_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        header = bytes([0x80, (0x80 if p.marker else 0) | p.payload_type])
        header += p.seq.to_bytes(2, "big") + p.timestamp.to_bytes(4, "big") + b"BNCH"
        for caller, _, port, _ in legs:
            caller.sendto(header + p.payload, ("127.0.0.1", port))


async def main(args: argparse.Namespace) -> None:
    # Each call takes 4 ports (RTP and RTCP on both sides), held for --delete-delay
    # (30 s) after its delete: room for both rounds of --calls calls.
    server = RtpengineServer(port_min=40000, port_count=args.calls * 20 + 100).start()
    try:
        settings = RtpengineSettings(delay_buffer_ms=args.delay_buffer_ms)
        media = AgentMedia(NgClient("127.0.0.1", server.ng_port), settings)
        found = await delays(server, media, args.bursts)
        print(
            f"rtpengine {server.settings.interface} userspace, delay buffer "
            f"{args.delay_buffer_ms} ms, DTMF-security {settings.dtmf_security}"
        )
        for name, values in found.items():
            print(
                f"caller->agent delay {name:9s}: p50 {percentile(values, 0.5):6.1f} ms  "
                f"p99 {percentile(values, 0.99):6.1f} ms  ({len(values)} onsets)"
            )
        added = statistics.median(found["masked"]) - statistics.median(found["unmasked"])
        print(f"added by masking (p50): {added:.1f} ms")
        for masked in (False, True):
            per_call = await cpu_per_call(server, media, args.calls, args.seconds, masked)
            label = "masked (transcoding)" if masked else "unmasked (relay)"
            calls_per_core = 1 / per_call if per_call > 0 else float("inf")
            print(
                f"rtpengine CPU {label:20s}: {per_call * 100:.3f}% of a core per call "
                f"({args.calls} calls, {args.seconds:.0f} s) -> {calls_per_core:.0f} calls/core"
            )
        media.ng.close()
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=50)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--delay-buffer-ms", type=int, default=60)
    asyncio.run(main(parser.parse_args()))
