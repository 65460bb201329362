"""UnicastStream over real loopback UDP, with this test as FreeSWITCH's end: what a
key press is in the stream and what it is not (tests/freeswitch/test_unicast_facts.py
pins what the real engine sends: 320 bytes of 0xFF for every 20 ms tick without a
caller's audio frame, during an RFC 2833 digit as for a lost packet)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping

import pytest

from payivr.esl.unicast import KEY_FILL_MAX_FRAMES, SILENT_FRAME, KeyFill, UnicastStream
from payivr.speech.audio import FRAME_BYTES
from payivr.speech.listener import KeyPressed

FILL = b"\xff" * FRAME_BYTES
VOICE = b"\x10\x27" * (FRAME_BYTES // 2)  # a loud frame (10000)


class FakeFreeswitch:
    """The channel's `sendmsg unicast`: binds the local port FreeSWITCH would and
    sends the frames it is given to the remote port, as FreeSWITCH does."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.to: tuple[str, int] | None = None

    @property
    def uuid(self) -> str:
        return "test-call"

    @property
    def hungup(self) -> bool:
        return False

    async def send_message(self, headers: Mapping[str, str]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", int(headers["local-port"])))
        self.to = ("127.0.0.1", int(headers["remote-port"]))
        self.send([VOICE])

    def send(self, frames: list[bytes]) -> None:
        assert self.sock is not None and self.to is not None
        for frame in frames:
            self.sock.sendto(frame, self.to)


async def read(stream: UnicastStream, count: int) -> list[bytes]:
    got: list[bytes] = []
    async for frame in stream.frames():
        got.append(frame)
        if len(got) == count:
            break
    return got


def test_a_lost_packet_is_silence_and_a_digits_run_of_fill_is_a_key_press() -> None:
    async def scenario() -> None:
        fs = FakeFreeswitch()
        stream = await UnicastStream.open(fs)
        try:
            assert await read(stream, 1) == [VOICE]
            # One or two ticks without the caller's packet: silence, no key.
            fs.send([VOICE, FILL, VOICE, FILL, FILL, VOICE])
            got = await read(stream, 6)
            assert got == [VOICE, SILENT_FRAME, VOICE, SILENT_FRAME, SILENT_FRAME, VOICE]
            # A 100 ms digit: the key is seen when the caller's audio comes back.
            fs.send([*[FILL] * 5, VOICE])
            with pytest.raises(KeyPressed):
                await read(stream, 6)
            # During a prompt (drain) too.
            fs.send([*[FILL] * 5, VOICE])
            await asyncio.sleep(0.1)
            with pytest.raises(KeyPressed):
                stream.drain()
        finally:
            stream.close()
            if fs.sock is not None:
                fs.sock.close()

    asyncio.run(scenario())


def test_a_phone_sending_no_audio_for_seconds_is_not_a_key_press() -> None:
    keys = KeyFill()
    for _ in range(KEY_FILL_MAX_FRAMES + 1):
        assert keys.frame(FILL) == SILENT_FRAME
    assert keys.frame(VOICE) == VOICE
    # And the count starts again after it.
    for _ in range(4):
        keys.frame(FILL)
    with pytest.raises(KeyPressed):
        keys.frame(VOICE)
