"""What a capture of a call's media proves: RTP and SRTP read from a tcpdump file.

SRTP (RFC 3711) with the SDES suite AES_CM_128_HMAC_SHA1_80, the one FreeSWITCH and
rtpengine offer first: session keys derived from the `a=crypto` master key and salt
(AES-CM PRF, key derivation rate 0), the payload encrypted with AES in counter mode,
an 80-bit HMAC-SHA1 tag over the header, the encrypted payload and the rollover
counter. `unprotect` checks the tag before it decrypts, so a packet it returns was
sent by whoever held the key, as SRTP; a clear RTP packet never passes.

The keys come from the test's own user agent (its SDP), stay in memory, and are
never written anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SUITE = "AES_CM_128_HMAC_SHA1_80"
TAG_LEN = 10  # HMAC-SHA1 truncated to 80 bits
RTP_HEADER_LEN = 12
_CRYPTO_LINE = re.compile(r"a=crypto:(\d+) (\S+) inline:([A-Za-z0-9+/=]+)")


def _keystream(key: bytes, iv: int, length: int) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv.to_bytes(16, "big"))).encryptor()
    return encryptor.update(bytes(length)) + encryptor.finalize()


@dataclass(frozen=True)
class SrtpKeys:
    """The session keys of one direction (RFC 3711 section 4.3)."""

    cipher_key: bytes
    cipher_salt: bytes
    auth_key: bytes

    @classmethod
    def derive(cls, master_key: bytes, master_salt: bytes) -> SrtpKeys:
        salt = int.from_bytes(master_salt, "big")

        def prf(label: int, length: int) -> bytes:
            # key_id = label || index DIV kdr (0 with kdr 0), 56 bits, XORed into the
            # 112-bit salt; the counter block is that times 2^16.
            return _keystream(master_key, ((label << 48) ^ salt) << 16, length)

        return cls(prf(0, 16), prf(2, 14), prf(1, 20))

    def packet_iv(self, ssrc: int, index: int) -> int:
        """The counter block of a packet: salt, SSRC and 48-bit index (roc, seq)."""
        return (int.from_bytes(self.cipher_salt, "big") << 16) ^ (ssrc << 64) ^ (index << 16)

    def tag(self, authenticated: bytes, roc: int) -> bytes:
        digest = hmac.new(self.auth_key, authenticated + roc.to_bytes(4, "big"), hashlib.sha1)
        return digest.digest()[:TAG_LEN]

    def protect(self, header: bytes, payload: bytes, roc: int = 0) -> bytes:
        """An SRTP packet as a sender makes it (a 12-byte RTP header, no CSRC or
        extension): the payload encrypted, the tag appended."""
        seq, ssrc = struct.unpack("!H", header[2:4])[0], struct.unpack("!I", header[8:12])[0]
        stream = _keystream(self.cipher_key, self.packet_iv(ssrc, (roc << 16) | seq), len(payload))
        body = header + bytes(a ^ b for a, b in zip(payload, stream, strict=True))
        return body + self.tag(body, roc)

    @classmethod
    def from_inline(cls, inline: str) -> SrtpKeys:
        raw = base64.b64decode(inline)
        if len(raw) != 30:
            raise ValueError(f"{SUITE} needs a 30-byte master key and salt, got {len(raw)}")
        return cls.derive(raw[:16], raw[16:])


def sdp_keys(sdp: str) -> SrtpKeys:
    """The keys of the AES_CM_128_HMAC_SHA1_80 `a=crypto` line of an SDP."""
    for _tag, suite, inline in _CRYPTO_LINE.findall(sdp):
        if suite == SUITE:
            return SrtpKeys.from_inline(inline)
    raise ValueError(f"no {SUITE} a=crypto line in the SDP")


@dataclass(frozen=True)
class Rtp:
    """One RTP (or SRTP) packet as captured: header fields and the bytes after the
    header (for SRTP: the encrypted payload followed by the tag)."""

    src_port: int
    dst_port: int
    payload_type: int
    marker: bool
    seq: int
    timestamp: int
    ssrc: int
    header: bytes
    body: bytes

    @property
    def wire(self) -> bytes:
        return self.header + self.body


def parse_rtp(udp_payload: bytes, src_port: int = 0, dst_port: int = 0) -> Rtp | None:
    """An RTP packet (version 2, not RTCP), or None."""
    if len(udp_payload) < RTP_HEADER_LEN or udp_payload[0] >> 6 != 2:
        return None
    if 72 <= udp_payload[1] & 0x7F <= 76:  # RTCP (SR, RR, SDES, BYE, APP) on a muxed port
        return None
    first, second, seq, timestamp, ssrc = struct.unpack("!BBHII", udp_payload[:12])
    length = RTP_HEADER_LEN + 4 * (first & 0x0F)
    if first & 0x10:  # a header extension: its length is in 32-bit words
        if len(udp_payload) < length + 4:
            return None
        length += 4 + 4 * struct.unpack("!H", udp_payload[length + 2 : length + 4])[0]
    if len(udp_payload) < length:
        return None
    return Rtp(
        src_port,
        dst_port,
        second & 0x7F,
        bool(second & 0x80),
        seq,
        timestamp,
        ssrc,
        udp_payload[:length],
        udp_payload[length:],
    )


@dataclass
class SrtpReceiver:
    """Unprotects one direction's packets, tracking each SSRC's rollover counter."""

    keys: SrtpKeys
    _roc: dict[int, int] = field(default_factory=dict)
    _last_seq: dict[int, int] = field(default_factory=dict)

    def unprotect(self, packet: Rtp) -> Rtp | None:
        """The clear packet if its tag is right for these keys, else None."""
        if len(packet.body) < TAG_LEN:
            return None
        roc = self._roc.get(packet.ssrc, 0)
        last = self._last_seq.get(packet.ssrc)
        if last is not None and packet.seq < last and last - packet.seq > 0x8000:
            roc += 1  # the sequence number wrapped
        clear = self._unprotect(packet, roc)
        if clear is not None:
            self._roc[packet.ssrc] = roc
            self._last_seq[packet.ssrc] = packet.seq
        return clear

    def _unprotect(self, packet: Rtp, roc: int) -> Rtp | None:
        encrypted, tag = packet.body[:-TAG_LEN], packet.body[-TAG_LEN:]
        if not hmac.compare_digest(self.keys.tag(packet.header + encrypted, roc), tag):
            return None
        iv = self.keys.packet_iv(packet.ssrc, (roc << 16) | packet.seq)
        stream = _keystream(self.keys.cipher_key, iv, len(encrypted))
        payload = bytes(a ^ b for a, b in zip(encrypted, stream, strict=True))
        return Rtp(
            packet.src_port,
            packet.dst_port,
            packet.payload_type,
            packet.marker,
            packet.seq,
            packet.timestamp,
            packet.ssrc,
            packet.header,
            payload,
        )


@dataclass(frozen=True)
class Captured:
    """One captured IPv4 packet's transport: protocol (6 TCP, 17 UDP), ports, payload."""

    proto: int
    src_port: int
    dst_port: int
    payload: bytes


def captured_packets(pcap: Path) -> Iterator[Captured]:
    """The IPv4 TCP and UDP packets of a classic pcap file (Ethernet or Linux cooked)."""
    data = pcap.read_bytes()
    magic = data[:4]
    if magic not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4"):
        raise ValueError(f"{pcap} is not a classic pcap file")
    endian = "<" if magic == b"\xd4\xc3\xb2\xa1" else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    link_len = {1: 14, 113: 16}.get(linktype)
    if link_len is None:
        raise ValueError(f"{pcap}: link type {linktype} is not Ethernet or Linux cooked")
    offset = 24
    while offset + 16 <= len(data):
        captured = struct.unpack(endian + "I", data[offset + 8 : offset + 12])[0]
        frame = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        ip = frame[link_len:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] not in (6, 17):
            continue
        total = struct.unpack("!H", ip[2:4])[0]
        transport = ip[(ip[0] & 0x0F) * 4 : total]
        src, dst = struct.unpack("!HH", transport[:4])
        start = 8 if ip[9] == 17 else (transport[12] >> 4) * 4
        yield Captured(ip[9], src, dst, transport[start:])


def linear_to_alaw(linear: int) -> int:
    """FreeSWITCH's G.711 A-law encoder (src/include/g711.h), bit for bit, so the
    audio a FreeSWITCH sends can be predicted exactly from the file it plays."""
    if linear >= 0:
        mask = 0x55 | 0x80
    else:
        mask = 0x55
        linear = -linear - 8
    if linear < 0:  # a tiny step below zero
        return 0x00 ^ mask
    seg = (linear | 0xFF).bit_length() - 1 - 7
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((linear >> (seg + 3 if seg else 4)) & 0x0F)) ^ mask


def alaw_frames(samples: Iterable[int], size: int = 160) -> set[bytes]:
    """The 20 ms PCMA payloads a FreeSWITCH playing these samples sends, leaving out
    frames too plain to tell apart (silence, a constant)."""
    coded = bytes(linear_to_alaw(s) for s in samples)
    frames = {coded[i : i + size] for i in range(0, len(coded) - size + 1, size)}
    return {f for f in frames if len(set(f)) >= 16}
