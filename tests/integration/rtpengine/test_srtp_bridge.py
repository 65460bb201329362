"""rtpengine bridging SRTP (the contact center's leg) and RTP (FreeSWITCH's), as
docs/security.md recommends where the node cannot do SRTP.

Real rtpengine (Debian's rtpengine-daemon, userspace, loopback), signalled over the
ng protocol with the flags the docs give for Kamailio's `rtpengine` module: the
contact center's INVITE offers RTP/SAVP with its own SDES key, and rtpengine offers
FreeSWITCH plain RTP/AVP with no key (`RTP/AVP ICE=remove DTLS=off SDES-off`);
FreeSWITCH's RTP/AVP answer goes back to the contact center as RTP/SAVP with
rtpengine's own `a=crypto` (`ICE=remove`). The test plays both endpoints.

Proven, both directions: the contact center's SRTP (audio and RFC 2833 events) comes
out to FreeSWITCH as the clear packets it encrypted, so rtpengine used the key of
the offer; FreeSWITCH's clear RTP comes out to the contact center as SRTP whose
HMAC-SHA1-80 tag verifies with the key of rtpengine's answer and which decrypts to
what FreeSWITCH sent, while no payload on that leg is the clear one.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import struct
import threading
import time

from payivr.media.ng import NgClient
from payivr.stack.rtp_pcap import EVENT_PT, PCMA_PT, decode_events, event_payload
from tests.integration.rtpengine.call import UdpReader
from tests.integration.rtpengine.server import RtpengineServer
from tests.support.srtp import (
    SUITE,
    TAG_LEN,
    SrtpKeys,
    SrtpReceiver,
    alaw_frames,
    parse_rtp,
    sdp_keys,
)

# The flags docs/security.md gives for Kamailio's rtpengine module, as ng parameters.
OFFER_TO_NODE = {"transport-protocol": "RTP/AVP", "ICE": "remove", "DTLS": "off", "SDES": ["off"]}
ANSWER_TO_CONTACT_CENTER = {"ICE": "remove"}
CALLER_KEYS = "4111"  # RFC 2833 events sent each way
PACKETS = 150  # 3 s of 20 ms audio


def sdp(port: int, session: str, protocol: str, crypto: str = "") -> str:
    return (
        "v=0\r\n"
        f"o={session} 1 1 IN IP4 127.0.0.1\r\n"
        "s=-\r\n"
        "c=IN IP4 127.0.0.1\r\n"
        "t=0 0\r\n"
        f"m=audio {port} {protocol} {PCMA_PT} {EVENT_PT}\r\n"
        f"a=rtpmap:{PCMA_PT} PCMA/8000\r\n"
        f"a=rtpmap:{EVENT_PT} telephone-event/8000\r\n"
        f"a=fmtp:{EVENT_PT} 0-15\r\n"
        + (f"a=crypto:1 {SUITE} inline:{crypto}\r\n" if crypto else "")
        + "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )


def _sdp_text(reply: dict[str, object]) -> str:
    body = reply["sdp"]
    if not isinstance(body, bytes):
        raise ValueError("no SDP in rtpengine's reply")
    return body.decode()


def _port(sdp_text: str) -> int:
    found = re.search(r"m=audio (\d+) ", sdp_text)
    if found is None:
        raise ValueError("no audio line in rtpengine's SDP")
    return int(found.group(1))


class Endpoint(UdpReader):
    """One side's media socket: what it sends from and receives on."""

    def __init__(self) -> None:
        self.datagrams: list[bytes] = []
        super().__init__()

    def received(self, data: bytes) -> None:
        self.datagrams.append(data)

    def send(self, packets: list[bytes], to_port: int) -> None:
        start = time.monotonic()
        for i, packet in enumerate(packets):
            delay = start + i * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.sock.sendto(packet, ("127.0.0.1", to_port))


def _stream(ssrc: int, frames: list[bytes]) -> list[tuple[bytes, bytes]]:
    """(header, payload) of a 20 ms PCMA stream with the events of CALLER_KEYS in its
    middle (start, continuation and three end packets per key, as phones send)."""
    out: list[tuple[bytes, bytes]] = []
    seq, ts = 65500, 8000  # the sequence number wraps during the stream

    def header(pt: int, marker: bool) -> bytes:
        return struct.pack("!BBHII", 0x80, pt | (0x80 if marker else 0), seq & 0xFFFF, ts, ssrc)

    for i in range(PACKETS):
        if i == PACKETS // 2:
            for key in CALLER_KEYS:
                for n in range(5):
                    end = n >= 2
                    out.append((header(EVENT_PT, n == 0), event_payload(int(key), end, 480)))
                    seq += 1
                ts += 800
        out.append((header(PCMA_PT, False), frames[i % len(frames)]))
        seq += 1
        ts += 160
    return out


def _frames() -> list[bytes]:
    samples = [(i * 7919) % 20000 - 10000 for i in range(8000)]  # loud, never silence
    return sorted(alaw_frames(samples))


def test_rtpengine_bridges_the_contact_centers_srtp_and_the_nodes_rtp_both_ways(
    rtpengine: RtpengineServer,
) -> None:
    contact_center, node = Endpoint(), Endpoint()
    cc_inline = base64.b64encode(os.urandom(30)).decode()
    cc_keys = SrtpKeys.from_inline(cc_inline)
    call_id = f"srtp-bridge-{time.monotonic_ns()}"

    async def signal() -> tuple[str, str]:
        ng = NgClient("127.0.0.1", rtpengine.ng_port)
        try:
            offer = await ng.request(
                "offer",
                **{
                    "call-id": call_id,
                    "from-tag": "cc-tag",
                    "sdp": sdp(contact_center.port, "cc", "RTP/SAVP", cc_inline),
                    **OFFER_TO_NODE,
                },
            )
            answer = await ng.request(
                "answer",
                **{
                    "call-id": call_id,
                    "from-tag": "cc-tag",
                    "to-tag": "node-tag",
                    "sdp": sdp(node.port, "node", "RTP/AVP"),
                    **ANSWER_TO_CONTACT_CENTER,
                },
            )
        finally:
            ng.close()
        return _sdp_text(offer), _sdp_text(answer)

    async def delete() -> None:
        ng = NgClient("127.0.0.1", rtpengine.ng_port)
        try:
            await ng.request("delete", **{"call-id": call_id})
        finally:
            ng.close()

    try:
        to_node, to_contact_center = asyncio.run(signal())
        # The node is offered plain RTP and no key; the contact center gets SRTP
        # with rtpengine's own key (not its own echoed back).
        assert "RTP/AVP" in to_node and "a=crypto" not in to_node and "a=ice" not in to_node
        assert re.search(r"m=audio \d+ RTP/SAVP ", to_contact_center)
        rtpengine_keys = sdp_keys(to_contact_center)
        assert cc_inline not in to_contact_center and rtpengine_keys != cc_keys

        frames = _frames()
        from_cc = _stream(0x43430001, frames)
        from_node = _stream(0x46530002, frames)
        roc = [0]

        def protect(header: bytes, payload: bytes) -> bytes:
            if struct.unpack("!H", header[2:4])[0] == 0:
                roc[0] += 1
            return cc_keys.protect(header, payload, roc[0])

        cc_wire = [protect(h, p) for h, p in from_cc]
        sending = [
            threading.Thread(target=contact_center.send, args=(cc_wire, _port(to_contact_center))),
            threading.Thread(
                target=node.send, args=([h + p for h, p in from_node], _port(to_node))
            ),
        ]
        for t in sending:
            t.start()
        for t in sending:
            t.join(30)
        time.sleep(0.5)
    finally:
        asyncio.run(delete())
        contact_center.close()
        node.close()

    # Contact center -> node: rtpengine decrypted with the offer's key; the node gets
    # the clear packets (no tag), payload for payload.
    at_node = [parse_rtp(d) for d in node.datagrams]
    assert all(p is not None for p in at_node) and len(at_node) >= len(from_cc) - 2
    clear_sent = [p for _h, p in from_cc]
    assert [p.body for p in at_node if p is not None] == clear_sent[-len(at_node) :]
    assert decode_events((p.payload_type, p.timestamp, p.body) for p in at_node if p) == "4111"

    # Node -> contact center: SRTP with rtpengine's key. Every packet is 10 bytes
    # longer than its payload, authenticates, and decrypts to what the node sent;
    # none of its payloads is the clear one.
    at_cc = [parse_rtp(d) for d in contact_center.datagrams]
    assert all(p is not None for p in at_cc) and len(at_cc) >= len(from_node) - 2
    wire = [p for p in at_cc if p is not None]
    node_payloads = [p for _h, p in from_node]
    assert [len(p.body) for p in wire] == [len(b) + TAG_LEN for b in node_payloads[-len(wire) :]]
    receiver = SrtpReceiver(rtpengine_keys)
    decrypted = [receiver.unprotect(p) for p in wire]
    assert all(d is not None for d in decrypted), "a packet failed SRTP authentication"
    assert [d.body for d in decrypted if d] == node_payloads[-len(wire) :]
    assert not any(
        p.body[: len(b)] == b for p, b in zip(wire, node_payloads[-len(wire) :], strict=True)
    )
    events = [(p.payload_type, p.timestamp, p.body) for p in wire]
    assert decode_events((d.payload_type, d.timestamp, d.body) for d in decrypted if d) == "4111"
    assert "4111" not in decode_events(events)
