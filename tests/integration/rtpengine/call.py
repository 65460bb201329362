"""One call through rtpengine as Kamailio sets it up, with an RTP sink on the agent side.

The signalling payivr's Kamailio does for the agent's leg (payivr.media.sdp flags:
offer from the FreeSWITCH side, answer from the agent) is done here over the ng
protocol, with the caller's media port and the agent's sink port in the SDPs. What
arrives at the agent's sink is kept with its arrival time.
"""

from __future__ import annotations

import math
import re
import socket
import threading
import time
from dataclasses import dataclass

from payivr.media.ng import NgClient
from payivr.media.sdp import ANSWER_FLAGS, OFFER_FLAGS
from payivr.stack.rtp_pcap import EVENT_PT, PCMA_PT, RtpPacket
from tests.integration.rtpengine.audio import CallerAudio, alaw_decode, rms
from tests.support.servers import free_port

LOUD_RMS = 500.0


def sdp(port: int, session: str) -> str:
    return (
        "v=0\r\n"
        f"o={session} 1 1 IN IP4 127.0.0.1\r\n"
        "s=-\r\n"
        "c=IN IP4 127.0.0.1\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP {PCMA_PT} {EVENT_PT}\r\n"
        f"a=rtpmap:{PCMA_PT} PCMA/8000\r\n"
        f"a=rtpmap:{EVENT_PT} telephone-event/8000\r\n"
        f"a=fmtp:{EVENT_PT} 0-15\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )


def media_port(answer: dict[str, object]) -> int:
    body = answer["sdp"]
    if not isinstance(body, bytes):
        raise ValueError("no SDP in rtpengine's answer")
    found = re.search(rb"m=audio (\d+) ", body)
    if found is None:
        raise ValueError("no audio line in rtpengine's SDP")
    return int(found.group(1))


@dataclass(frozen=True)
class Received:
    at: float
    payload_type: int
    seq: int
    timestamp: int
    payload: bytes


class UdpReader:
    """A UDP socket on loopback (its own port from the test range), every datagram
    handed to :meth:`received` by a reading thread until :meth:`close`."""

    def __init__(self) -> None:
        self.port = free_port(socket.SOCK_DGRAM)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def received(self, data: bytes) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            self.received(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class AgentSink(UdpReader):
    """The agent's RTP receiver: each packet's header fields and payload, timed."""

    def __init__(self) -> None:
        self.packets: list[Received] = []
        super().__init__()

    def received(self, data: bytes) -> None:
        if len(data) < 12:
            return
        self.packets.append(
            Received(
                time.monotonic(),
                data[1] & 0x7F,
                int.from_bytes(data[2:4], "big"),
                int.from_bytes(data[4:8], "big"),
                data[12:],
            )
        )


class MediaCall:
    """Caller -> rtpengine -> agent, set up with payivr's offer/answer flags."""

    def __init__(self, ng: NgClient, call_id: str, caller_port: int) -> None:
        self.ng = ng
        self.call_id = call_id
        self.caller_port = caller_port
        self.sink = AgentSink()
        self.to_agent_port = 0  # where rtpengine sends from, towards the agent
        self.from_caller_port = 0  # where the caller sends to

    async def setup(self) -> None:
        offer = await self.ng.request(
            "offer",
            **{
                "call-id": self.call_id,
                "from-tag": "fs-tag",
                "sdp": sdp(self.caller_port, "freeswitch"),
                **OFFER_FLAGS,
            },
        )
        self.to_agent_port = media_port(offer)
        answer = await self.ng.request(
            "answer",
            **{
                "call-id": self.call_id,
                "from-tag": "fs-tag",
                "to-tag": "agent-tag",
                "sdp": sdp(self.sink.port, "agent"),
                **ANSWER_FLAGS,
            },
        )
        self.from_caller_port = media_port(answer)

    async def delete(self) -> None:
        await self.ng.request("delete", **{"call-id": self.call_id})
        self.sink.close()


def send_stream(
    packets: list[RtpPacket], from_port: int, to_port: int, ssrc: int = 0x43414C4C
) -> None:
    """Send the packets at their times (real time), from the caller's media port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", from_port))
        start = time.monotonic()
        for p in packets:
            delay = start + p.time_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            header = bytes([0x80, (0x80 if p.marker else 0) | p.payload_type])
            header += p.seq.to_bytes(2, "big") + p.timestamp.to_bytes(4, "big")
            sock.sendto(header + ssrc.to_bytes(4, "big") + p.payload, ("127.0.0.1", to_port))


def beep(ms: int = 200, freq: float = 400.0) -> list[int]:
    """A plain tone burst (no DTMF pair): one clean onset per burst."""
    return [int(5000 * math.sin(2 * math.pi * freq * i / 8000)) for i in range(8 * ms)]


def measure_onsets(call: MediaCall, caller_port: int, audio: CallerAudio) -> list[float]:
    """Each loud onset's caller->agent delay (ms) for `audio` sent now."""
    first = len(call.sink.packets)
    start = time.monotonic()
    sender = threading.Thread(
        target=send_stream, args=(audio.packets, caller_port, call.from_caller_port)
    )
    sender.start()
    sender.join()
    time.sleep(0.4)
    sent = [start + p.time_s for p in audio.packets
            if rms(alaw_decode(p.payload)) > LOUD_RMS]  # fmt: skip
    sent_onsets = [t for i, t in enumerate(sent) if i == 0 or t - sent[i - 1] > 0.1]
    got = [p for p in call.sink.packets[first:] if p.payload_type == PCMA_PT]
    loud = [p.at for p in got if rms(alaw_decode(p.payload)) > LOUD_RMS]
    got_onsets = [t for i, t in enumerate(loud) if i == 0 or t - loud[i - 1] > 0.1]
    return onset_delays(sent_onsets, got_onsets)


def onset_delays(sent: list[float], got: list[float]) -> list[float]:
    """Each sent onset's delay (ms) to the first received onset after it."""
    delays = []
    for s in sent:
        later = [g for g in got if s <= g < s + 0.5]
        if later:
            delays.append((later[0] - s) * 1000)
    return delays
