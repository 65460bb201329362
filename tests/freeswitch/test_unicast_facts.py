"""What speech input relies on in FreeSWITCH's stock `unicast` (docs/dictation.md),
pinned against a real FreeSWITCH.

A loopback call (mod_loopback, loaded for the test): leg A plays a 440 Hz tone,
leg B runs `socket` to this test's own outbound-socket server (parked,
`async full`, as the payivr dialplan does), which sends `unicast` and listens on
loopback UDP. Skipped without FreeSWITCH
(FREESWITCH_BIN or PATH).
"""

from __future__ import annotations

import array
import dataclasses
import itertools
import math
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from payivr.core.config import load_config
from payivr.esl.unicast import free_udp_port
from payivr.stack.dtmf_tones import alaw_decode, alaw_encode, ulaw_encode
from payivr.stack.rtp_pcap import EVENT_PT, PCMA_PT, PCMU_PT, Keying, RtpPacket, rtp_packets
from payivr.stack.sipp import Sipp
from payivr.stack.up import StackState
from tests.conftest import EXAMPLE_CONFIG
from tests.freeswitch.engine_marks import FREESWITCH, NEEDS_FREESWITCH
from tests.freeswitch.inbound import InboundSocket, parse_event, read_message

pytestmark = NEEDS_FREESWITCH
TONE = "tone_stream://%(10000,0,440);loops=-1"


@dataclass
class Fs:
    state: StackState
    conf: Path
    es_port: int
    es_password: str

    def inbound(self) -> InboundSocket:
        return InboundSocket(self.es_port, self.es_password)


@pytest.fixture(scope="module")
def fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fs]:
    from payivr.stack.up import stack_down, stack_up

    root = tmp_path_factory.mktemp("unicast")
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["secrets_file"] = str((EXAMPLE_CONFIG.parent / data["secrets_file"]).resolve())
    data["services"]["esl"]["prompts_dir"] = str(
        (EXAMPLE_CONFIG.parent / data["services"]["esl"]["prompts_dir"]).resolve()
    )
    config_path = root / "payivr.yaml"
    config_path.write_text(yaml.safe_dump(data))
    state = stack_up(config_path, root / "stack", freeswitch=FREESWITCH)
    try:
        config = load_config(Path(state.config))
        es = config.services.esl.event_socket
        password = es.password.value() if es.password is not None else "ClueCon"
        yield Fs(state, root / "stack" / "freeswitch" / "conf", es.port, password)
    finally:
        stack_down(root / "stack")


@dataclass
class OutboundCall:
    """This test's side of one outbound socket connection (blocking)."""

    sock: socket.socket
    buf: bytes = b""
    replies: list[str] = field(default_factory=list)

    def send(self, text: str) -> str:
        self.sock.sendall(text.encode())
        while True:
            head = self._message()
            if "command/reply" in head:
                self.replies.append(head)
                return head

    def _message(self) -> str:
        head, _body, self.buf = read_message(self.sock, self.buf)
        return head

    def unicast(self, fs_port: int, our_port: int, transport: str = "udp") -> str:
        return self.send(
            "sendmsg\ncall-command: unicast\nlocal-ip: 127.0.0.1\n"
            f"local-port: {fs_port}\nremote-ip: 127.0.0.1\nremote-port: {our_port}\n"
            f"transport: {transport}\n\n"
        )

    def execute(self, app: str, arg: str) -> str:
        argument = f"execute-app-arg: {arg}\n" if arg else ""
        return self.send(
            f"sendmsg\ncall-command: execute\nexecute-app-name: {app}\n"
            f"{argument}event-lock: true\n\n"
        )


class Listener:
    """Our end of a stream: counts the datagrams FreeSWITCH sends."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])

    def collect(self, seconds: float) -> list[tuple[float, bytes]]:
        got: list[tuple[float, bytes]] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            got.append((time.monotonic(), data))
        return got


def loud(frame: bytes) -> bool:
    samples = array.array("h", frame)
    return sum(abs(v) for v in samples) / max(1, len(samples)) > 500


def place_call(fs: Fs) -> tuple[OutboundCall, socket.socket]:
    """A loopback call whose leg B connects to our outbound socket server."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(15)
    port = server.getsockname()[1]
    inbound = fs.inbound()
    said = [inbound.api("load mod_loopback")]
    # Leg B runs `socket` straight away (mod_loopback's app= form): no dialplan.
    target = f"'loopback/app=socket:127.0.0.1:{port} async full'"

    def originate() -> None:
        said.append(inbound.api(f"originate {target} &playback({TONE})"))

    threading.Thread(target=originate, daemon=True).start()
    try:
        conn, _ = server.accept()
    except TimeoutError:
        raise AssertionError(f"no outbound connection; FreeSWITCH said {said}") from None
    conn.settimeout(10)
    call = OutboundCall(conn)
    conn.sendall(b"connect\n\n")
    call._message()  # the channel data
    call.send("myevents\n\n")
    call.execute("answer", "")
    return call, server


def test_unicast_streams_l16_frames_every_20ms_and_the_facts_payivr_relies_on(fs: Fs) -> None:
    call, server = place_call(fs)
    try:
        first = Listener()
        reply = call.unicast(free_udp_port(), first.port)
        assert "+OK" in reply
        frames = first.collect(1.0)
        # One 320-byte L16 8 kHz frame per 20 ms, carrying the caller's audio.
        assert 40 <= len(frames) <= 60, len(frames)
        assert {len(f) for _, f in frames} == {320}
        assert sum(loud(f) for _, f in frames) > 30
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(frames)]
        assert 0.015 < sorted(gaps)[len(gaps) // 2] < 0.025

        # A second unicast answers +OK but is torn down at once: no audio on it.
        second = Listener()
        assert "+OK" in call.unicast(free_udp_port(), second.port)
        assert len(second.collect(0.5)) <= 2

        # An application that plays ends the stream for good.
        call.execute("playback", "silence_stream://300")
        time.sleep(0.6)
        first.collect(0.1)
        assert first.collect(0.6) == []
    finally:
        call.sock.close()
        server.close()


def test_unicast_asked_over_tcp_still_streams_over_udp(fs: Fs) -> None:
    call, server = place_call(fs)
    try:
        listener = Listener()
        assert "+OK" in call.unicast(free_udp_port(), listener.port, transport="tcp")
        assert len(listener.collect(0.6)) >= 20
    finally:
        call.sock.close()
        server.close()


# -- a real RTP leg: full duplex, and what a key press looks like in the stream -------

SIPP = Path(__file__).parent / "sipp"
TONE_HZ = 440
REPLY_HZ = 1000  # what the app sends back: another frequency, so it is not an echo


def alaw_tone(hz: int, start: int, count: int) -> bytes:
    return bytes(
        alaw_encode(int(8000 * math.sin(2 * math.pi * hz * (start + i) / 8000)))
        for i in range(count)
    )


def crossings(samples: list[int]) -> int:
    return sum(1 for a, b in itertools.pairwise(samples) if (a < 0) != (b < 0))


class RtpPeer:
    """The caller's end of a real RTP leg: a UDP socket named in the SDP of the SIPp
    UAS that FreeSWITCH calls. It sends A-law and RFC 2833 packets on a 20 ms clock
    and keeps what FreeSWITCH sends it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.received: list[tuple[float, int, bytes]] = []  # (time, payload type, payload)
        self.sent: list[tuple[float, int]] = []  # (time, payload type)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except (TimeoutError, OSError):
                continue
            self.received.append((time.monotonic(), data[1] & 0x7F, data[12:]))

    def send(self, packets: list[RtpPacket], to: tuple[str, int]) -> None:
        """Send `packets` at their times (absolute schedule), noting when each went."""
        start = time.monotonic()
        for p in packets:
            delay = start + p.time_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            header = struct.pack(
                "!BBHII", 0x80, (0x80 if p.marker else 0) | p.payload_type, p.seq, p.timestamp, 7
            )
            self.sock.sendto(header + p.payload, to)
            self.sent.append((time.monotonic(), p.payload_type))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def wait_bound(port: int, timeout_s: float = 5.0) -> None:
    """Until a process (SIPp) has bound UDP `port` on loopback."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing bound udp port {port}")


def place_rtp_call(
    fs: Fs, workdir: Path, codec: str = "PCMA"
) -> tuple[OutboundCall, socket.socket, RtpPeer, Sipp, int]:
    """FreeSWITCH calls a SIPp UAS whose SDP names our RtpPeer (`codec`, RFC 2833)
    and hands the call to our outbound socket: (call, server, peer, uas, FreeSWITCH's
    RTP port)."""
    peer = RtpPeer()
    uas_port = free_udp_port()
    uas_xml = workdir / "uas.xml"
    sdp = (SIPP / "uas-rtp-sink.xml").read_text().replace("SINK_PORT", str(peer.port))
    if codec == "PCMU":
        sdp = sdp.replace("RTP/AVP 8 101", "RTP/AVP 0 101").replace("8 PCMA/", "0 PCMU/")
    uas_xml.write_text(sdp)
    uas = Sipp(
        "uas", ["-sf", str(uas_xml), "-p", str(uas_port), "-m", "1", "-timeout", "60s"], workdir
    ).start()
    wait_bound(uas_port)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(15)
    port = server.getsockname()[1]
    inbound = fs.inbound()
    said: list[str] = []
    target = f"sofia/payivr/sink@127.0.0.1:{uas_port}"

    def originate() -> None:
        said.append(inbound.api(f"originate {target} '&socket(127.0.0.1:{port} async full)'"))

    threading.Thread(target=originate, daemon=True).start()
    try:
        conn, _ = server.accept()
    except TimeoutError:
        uas.stop()
        raise AssertionError(f"no outbound connection; FreeSWITCH said {said}") from None
    conn.settimeout(10)
    call = OutboundCall(conn)
    conn.sendall(b"connect\n\n")
    channel = parse_event(call._message())
    call.send("myevents\n\n")
    return call, server, peer, uas, int(channel["variable_local_media_port"])


def caller_packets(
    seconds: float, key_at_s: float, lost_at_s: float, codec: str
) -> list[RtpPacket]:
    """A 440 Hz tone in `codec`, a "5" as an RFC 2833 event of 200 ms at `key_at_s`
    (the audio pauses meanwhile, as phones do), and one audio packet lost at
    `lost_at_s`."""
    packets = []
    lost = round(lost_at_s * 50)
    for p in rtp_packets([Keying(key_at_s, "5", tone_ms=200)], seconds):
        if p.payload_type != PCMA_PT:
            packets.append(p)
        elif round(p.time_s * 50) != lost:
            tone = alaw_tone(TONE_HZ, p.timestamp, len(p.payload))
            if codec == "PCMU":
                pcm = [alaw_decode(b) for b in tone]
                p = dataclasses.replace(p, payload_type=PCMU_PT)
                tone = bytes(ulaw_encode(x) for x in pcm)
            packets.append(dataclasses.replace(p, payload=tone))
    return packets


def fill(frame: bytes) -> bool:
    return frame.count(0xFF) == len(frame)


@pytest.mark.parametrize(("flags", "codec"), [("", "PCMA"), ("native", "PCMA"), ("native", "PCMU")])
def test_while_a_digit_plays_and_when_a_packet_is_lost_the_stream_carries_0xff_fill(
    fs: Fs, tmp_path: Path, flags: str, codec: str
) -> None:
    """An RFC 2833 digit, and every tick without the caller's audio, come out as 320
    bytes of 0xFF (FreeSWITCH's CNG frame, switch_ivr.c: `memset(decoded, 255, bpf)`),
    in L16 and in `native` mode alike; the caller's audio is 320-byte L16 frames, or
    with `native` the call's 160-byte A-law or u-law ones. So fill alone is not a key
    press: a digit is a run of it as long as the event (docs/dictation.md). A single
    lost packet (at 2.3 s) showed as one or two fill frames in most runs here, but
    not when the packets after it were already queued: not asserted."""
    call, server, peer, uas, fs_rtp = place_rtp_call(fs, tmp_path, codec)
    try:
        listener = Listener()
        command = (
            "sendmsg\ncall-command: unicast\nlocal-ip: 127.0.0.1\n"
            f"local-port: {free_udp_port()}\nremote-ip: 127.0.0.1\n"
            f"remote-port: {listener.port}\ntransport: udp\n"
        )
        assert "+OK" in call.send(command + (f"flags: {flags}\n" if flags else "") + "\n")
        packets = caller_packets(3.0, key_at_s=1.0, lost_at_s=2.3, codec=codec)
        sender = threading.Thread(target=peer.send, args=(packets, ("127.0.0.1", fs_rtp)))
        started = time.monotonic()
        sender.start()
        frames = listener.collect(3.8)
        sender.join(5)
    finally:
        call.sock.close()
        server.close()
        peer.close()
        uas.stop()
    audio_size = 160 if flags == "native" else 320
    after = [(t, f) for t, f in frames if t - started > 0.2]
    fills = [t for t, f in after if fill(f)]
    shown = [round(t - started, 2) for t in fills]
    assert {len(f) for _, f in after if fill(f)} == {320}
    assert {len(f) for _, f in after if not fill(f)} == {audio_size}, {len(f) for _, f in after}
    # The digit: a run of fill frames as long as the event (200 ms) from when its
    # packets went.
    events = [t for t, pt in peer.sent if pt == EVENT_PT]
    digit = [t for t in fills if events[0] - 0.05 < t < events[-1] + 0.25]
    assert 8 <= len(digit) <= 14, shown
    # The caller stops sending: from then on every tick is fill.
    tail = [f for t, f in after if t > peer.sent[-1][0] + 0.1]
    assert len(tail) >= 5 and all(fill(f) for f in tail), shown
    # Everything else is the caller's tone.
    assert sum(1 for t, f in after if not fill(f)) > 100


def test_frames_sent_to_freeswitchs_port_are_played_to_the_caller(fs: Fs, tmp_path: Path) -> None:
    """Full duplex: 1 s of a 1 kHz tone sent as 50 L16 frames, one every 20 ms, to
    FreeSWITCH's end of the stream reaches the caller as RTP, one packet per frame
    every 20 ms; nothing is played before we send."""
    call, server, peer, uas, _fs_rtp = place_rtp_call(fs, tmp_path)
    try:
        listener = Listener()
        fs_port = free_udp_port()
        assert "+OK" in call.unicast(fs_port, listener.port)
        assert len(listener.collect(0.3)) > 5  # the stream runs
        quiet_before = len(peer.received)
        start = time.monotonic()
        for n in range(50):
            samples = [int(8000 * math.sin(2 * math.pi * REPLY_HZ * (n * 160 + i) / 8000))
                       for i in range(160)]  # fmt: skip
            listener.sock.sendto(array.array("h", samples).tobytes(), ("127.0.0.1", fs_port))
            delay = start + (n + 1) * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        time.sleep(0.5)
    finally:
        call.sock.close()
        server.close()
        peer.close()
        uas.stop()
    heard = [
        (t, [alaw_decode(b) for b in payload])
        for t, pt, payload in peer.received[quiet_before:]
        if pt == PCMA_PT
    ]
    toned = [
        (t, s) for t, s in heard if 35 <= crossings(s) <= 45 and loud(array.array("h", s).tobytes())
    ]
    assert 45 <= len(toned) <= 52, (len(toned), len(heard))
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(toned)]
    assert 0.015 < sorted(gaps)[len(gaps) // 2] < 0.025
    assert toned[0][0] >= start
