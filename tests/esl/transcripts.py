"""Real FreeSWITCH event-socket captures (tests/fixtures/freeswitch/transcripts) as templates.

The fake FreeSWITCH in tests/esl/peer.py sends these bytes: the connect reply, the
events and the notices of FreeSWITCH 1.10.12, with only the channel UUID, the
variables, the Application-* headers and the counters rewritten per call. The
captures are part of the repository, recorded by tests/fixtures/freeswitch/record.py
(docs/esl.md, "Test fixtures"); a missing one is a failure, never a skip.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from tests.fixtures.freeswitch import TRANSCRIPTS
from tests.fixtures.freeswitch.scenarios import SCENARIOS

# Every recording the recorder makes; each is expected (tests/esl/test_codec.py).
NAMES = tuple(s.name for s in SCENARIOS)

# Printable ASCII that FreeSWITCH's switch_url_encode leaves alone (besides letters,
# digits and "_.-~"): its unsafe set is \r \n space " # % & + : ; < = > ? @ [ \\ ] ^ ` { | }.
_FS_SAFE = "!$'()*,/"


def parse(path: Path) -> list[tuple[str, float, bytes]]:
    """(direction, seconds, raw bytes) per wire block, as the transcripts README says."""
    return parse_bytes(path.read_bytes())


def parse_bytes(data: bytes) -> list[tuple[str, float, bytes]]:
    pos, out = 0, []
    while pos < len(data):
        nl = data.index(b"\n", pos)
        line = data[pos:nl].decode()
        pos = nl + 1
        if line.startswith((">>> ", "<<< ")):
            direction, seconds, size = line.split(" ")
            n = int(size)
            out.append((direction, float(seconds), data[pos : pos + n]))
            pos += n + 1
    return out


def url_encode(value: str) -> str:
    """As FreeSWITCH's switch_url_encode: everything but letters, digits and _FS_SAFE."""
    return quote(value, safe=_FS_SAFE)


def header_lines(block: bytes) -> list[tuple[str, str]]:
    """Raw (name, still-encoded value) pairs of a header block."""
    pairs = []
    for line in block.decode().split("\n"):
        if line:
            name, _, value = line.partition(": ")
            pairs.append((name, value))
    return pairs


@dataclass(frozen=True)
class Templates:
    """The captured messages the peer replays."""

    uuid: str  # channel UUID in the connect template (replaced per call)
    connect: list[tuple[str, str]]  # connect reply header lines, still url-encoded
    events: dict[str, tuple[str, list[tuple[str, str]]]]  # name -> (orig uuid, lines)
    linger_notice: bytes
    disconnect_notice: bytes

    def event_lines(self, name: str) -> tuple[str, list[tuple[str, str]]]:
        return self.events[name]


def _event_blocks(path: Path) -> list[bytes]:
    blocks = []
    for direction, _, raw in parse(path):
        if direction == "<<<" and b"Content-Type: text/event-plain" in raw.split(b"\n\n", 1)[0]:
            blocks.append(raw.split(b"\n\n", 1)[1])
    return blocks


@lru_cache(maxsize=1)
def load() -> Templates:
    """Read the templates once per test session."""
    first = parse(TRANSCRIPTS / "connect_and_channel_data.txt")
    connect_raw = next(raw for d, _, raw in first if d == "<<<")
    connect = header_lines(connect_raw.rstrip(b"\n"))
    uuid = dict(connect)["Unique-ID"]
    events: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    sources = [
        "play_and_get_digits_ok.txt",
        "connect_and_channel_data.txt",
        "set_headers_and_bridge.txt",
        "deflect.txt",
    ]
    for source in sources:
        for body in _event_blocks(TRANSCRIPTS / source):
            lines = header_lines(body.rstrip(b"\n"))
            header = dict(lines)
            name = header["Event-Name"]
            # The richest EXECUTE_COMPLETE (play_and_get_digits, with read_* variables)
            # is the template for all of them; otherwise the first capture wins.
            richest = header.get("Application") == "play_and_get_digits"
            if name in events and not (name == "CHANNEL_EXECUTE_COMPLETE" and richest):
                continue
            events[name] = (header["Unique-ID"], lines)
    notices = [
        raw
        for d, _, raw in parse(TRANSCRIPTS / "caller_hangup_during_collect.txt")
        if d == "<<<" and raw.startswith(b"Content-Type: text/disconnect-notice")
    ]
    linger = next(n for n in notices if b"Content-Disposition: linger" in n)
    disconnect = next(n for n in notices if b"Content-Disposition: disconnect" in n)
    return Templates(uuid, connect, events, linger, disconnect)
