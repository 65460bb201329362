"""Caller audio for SIPp's play_pcap_audio: G.711 A-law silence plus RFC 2833 digits,
or the caller's speech as G.711 u-law (`spoken_call`).

SIPp's stock dtmf_2833_N.pcap files reuse one RTP timestamp for every digit, so a
receiver that (correctly, RFC 4733 section 2.5.1.3) treats packets with the same
timestamp as one event drops repeated digits: "4111" arrives as "41". Here every
event gets the timestamp of the moment it starts and sequence numbers always
increase. By default the audio stream pauses while an event is sent, as most phones
do; with `inband=True` the phone also plays the key's tones in its audio, packet for
packet alongside the events (payivr.stack.dtmf_tones), as phones set to send DTMF
"both ways" do.

Format: classic pcap (microsecond timestamps), Ethernet/IPv4/UDP/RTP, which SIPp's
pcap player reads (it rewrites addresses and ports to the negotiated media).
"""

from __future__ import annotations

import array
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from payivr.stack.dtmf_tones import alaw_encode, tone_samples, ulaw_encode

PTIME_MS = 20
SAMPLES_PER_PACKET = 160  # 8 kHz x 20 ms
ALAW_SILENCE = 0xD5  # A-law code of a zero sample
ULAW_SILENCE = 0xFF  # u-law code of a zero sample
PCMA_PT = 8
PCMU_PT = 0
EVENT_PT = 101
EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
KEYS_OF_EVENTS = {v: k for k, v in EVENTS.items()}


@dataclass(frozen=True)
class Keying:
    """Digits keyed starting at `start_s`, each `tone_ms` long, one every `every_ms`."""

    start_s: float
    digits: str
    tone_ms: int = 100
    every_ms: int = 300


@dataclass(frozen=True)
class RtpPacket:
    """One packet as generated (for the pcap, and for tests to inspect)."""

    time_s: float
    payload_type: int
    marker: bool
    seq: int
    timestamp: int
    payload: bytes


def event_payload(event: int, end: bool, duration: int, volume: int = 10) -> bytes:
    """RFC 4733 telephone-event payload: event, E bit + volume, duration (samples)."""
    return struct.pack("!BBH", event, (0x80 if end else 0) | volume, duration)


def rtp_packets(
    keyings: Sequence[Keying], total_s: float, *, inband: bool = False
) -> list[RtpPacket]:
    """The caller's RTP stream: 20 ms packets for `total_s`, digits where keyed (as
    events, and with `inband` also as tones in audio packets of the same slots)."""
    # Which 20 ms slots carry which event (slot index -> (event, first slot of event)).
    slots: dict[int, tuple[int, int]] = {}
    for keying in keyings:
        for i, digit in enumerate(keying.digits):
            if digit not in EVENTS:
                raise ValueError(f"not a DTMF key: {digit!r}")
            first = round((keying.start_s * 1000 + i * keying.every_ms) / PTIME_MS)
            count = max(1, keying.tone_ms // PTIME_MS)
            for slot in range(first, first + count):
                if slot in slots:
                    raise ValueError("digits overlap: leave more time between them")
                slots[slot] = (EVENTS[digit], first)
    packets: list[RtpPacket] = []
    seq = 1
    total_slots = round(total_s * 1000 / PTIME_MS)
    slot = 0
    while slot < total_slots:
        ts = slot * SAMPLES_PER_PACKET
        if slot in slots:
            event, first = slots[slot]
            last = first
            while last + 1 in slots and slots[last + 1] == (event, first):
                last += 1
            n = last - first + 1
            for k in range(n):
                duration = (k + 1) * SAMPLES_PER_PACKET
                end = k == n - 1
                if inband:
                    # The slot's audio first, then its event: a receiver gets both.
                    key = KEYS_OF_EVENTS[event]
                    tone = tone_samples(key, k * SAMPLES_PER_PACKET, SAMPLES_PER_PACKET)
                    packets.append(
                        RtpPacket(
                            (first + k) * PTIME_MS / 1000,
                            PCMA_PT,
                            False,
                            seq,
                            (first + k) * SAMPLES_PER_PACKET,
                            bytes(alaw_encode(x) for x in tone),
                        )
                    )
                    seq = (seq + 1) & 0xFFFF
                # The end packet goes out three times (RFC 4733 2.5.1.4): same timestamp
                # and duration, new sequence numbers.
                repeats = 3 if end else 1
                for _ in range(repeats):
                    packets.append(
                        RtpPacket(
                            (first + k) * PTIME_MS / 1000,
                            EVENT_PT,
                            k == 0,
                            seq,
                            first * SAMPLES_PER_PACKET,
                            event_payload(event, end, duration),
                        )
                    )
                    seq = (seq + 1) & 0xFFFF
            slot = last + 1
            continue
        packets.append(
            RtpPacket(
                slot * PTIME_MS / 1000,
                PCMA_PT,
                slot == 0,
                seq,
                ts,
                bytes([ALAW_SILENCE]) * SAMPLES_PER_PACKET,
            )
        )
        seq = (seq + 1) & 0xFFFF
        slot += 1
    return packets


def _rtp_bytes(p: RtpPacket, ssrc: int) -> bytes:
    return (
        struct.pack(
            "!BBHII",
            0x80,
            (0x80 if p.marker else 0) | p.payload_type,
            p.seq,
            p.timestamp & 0xFFFFFFFF,
            ssrc,
        )
        + p.payload
    )


def _ipv4_checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(rtp: bytes, src_port: int = 6000, dst_port: int = 7000) -> bytes:
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(rtp), 0) + rtp
    ip = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(udp),
            0,
            0x4000,
            64,
            17,
            0,
            bytes([127, 0, 0, 1]),
            bytes([127, 0, 0, 1]),
        )
    )
    struct.pack_into("!H", ip, 10, _ipv4_checksum(bytes(ip)))
    ether = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00"
    return ether + bytes(ip) + udp


def write_pcap(path: Path, packets: Iterable[RtpPacket], ssrc: int = 0x5041594E) -> Path:
    """Write the packets as a pcap SIPp can play (`<exec play_pcap_audio="..."/>`)."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for p in packets:
        frame = _frame(_rtp_bytes(p, ssrc))
        sec = int(p.time_s)
        usec = round((p.time_s - sec) * 1_000_000)
        out += struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))
    return path


def keyed_call(
    path: Path, keyings: Sequence[Keying], tail_s: float = 2.0, *, inband: bool = False
) -> Path:
    """A pcap lasting until `tail_s` after the last digit."""
    end = max((k.start_s + len(k.digits) * k.every_ms / 1000 for k in keyings), default=0.0)
    return write_pcap(path, rtp_packets(keyings, end + tail_s, inband=inband))


@dataclass(frozen=True)
class Saying:
    """Speech the caller says from `start_s` on: L16 mono 8 kHz samples."""

    start_s: float
    pcm: bytes

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / 8000


def speech_packets(sayings: Sequence[Saying], total_s: float) -> list[RtpPacket]:
    """The caller's RTP stream: 20 ms u-law (PCMU) packets for `total_s`, carrying
    each saying's audio from its start slot on and silence in between. u-law: of the
    corpus voice the tests use, pocketsphinx gets every utterance right through
    u-law and misses two in 38 through A-law (docs/dictation.md)."""
    payloads: dict[int, bytes] = {}
    for saying in sayings:
        samples = array.array("h", saying.pcm[: len(saying.pcm) // 2 * 2])
        if sys.byteorder != "little":
            samples.byteswap()
        encoded = bytes(ulaw_encode(x) for x in samples)
        first = round(saying.start_s * 1000 / PTIME_MS)
        for k in range(0, len(encoded), SAMPLES_PER_PACKET):
            slot = first + k // SAMPLES_PER_PACKET
            if slot in payloads:
                raise ValueError("sayings overlap: leave more time between them")
            payload = encoded[k : k + SAMPLES_PER_PACKET]
            payloads[slot] = payload + bytes([ULAW_SILENCE]) * (SAMPLES_PER_PACKET - len(payload))
    silence = bytes([ULAW_SILENCE]) * SAMPLES_PER_PACKET
    return [
        RtpPacket(
            slot * PTIME_MS / 1000,
            PCMU_PT,
            slot == 0,
            (slot + 1) & 0xFFFF,
            slot * SAMPLES_PER_PACKET,
            payloads.get(slot, silence),
        )
        for slot in range(round(total_s * 1000 / PTIME_MS))
    ]


def spoken_call(path: Path, sayings: Sequence[Saying], tail_s: float = 3.0) -> Path:
    """A pcap of the caller saying `sayings`, lasting until `tail_s` after the last."""
    end = max((s.start_s + s.seconds for s in sayings), default=0.0)
    return write_pcap(path, speech_packets(sayings, end + tail_s))


def decode_events(rtp_payloads: Iterable[tuple[int, int, bytes]]) -> str:
    """Digits from (payload type, timestamp, payload) as a receiver does: one per
    distinct timestamp of telephone-event packets with the end bit."""
    seen: set[int] = set()
    digits = []
    for pt, ts, payload in rtp_payloads:
        if pt != EVENT_PT or len(payload) < 4 or not payload[1] & 0x80 or ts in seen:
            continue
        seen.add(ts)
        digits.append(KEYS_OF_EVENTS.get(payload[0], "?"))
    return "".join(digits)
