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
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from payivr.core.config import load_config
from payivr.esl.unicast import free_udp_port
from payivr.stack.up import StackState
from tests.conftest import EXAMPLE_CONFIG
from tests.freeswitch.engine_marks import FREESWITCH, NEEDS_FREESWITCH
from tests.freeswitch.inbound import InboundSocket, read_message

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
