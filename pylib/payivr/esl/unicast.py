"""The call's audio over FreeSWITCH's stock ``unicast``: no file, no extra module.

``sendmsg`` with ``call-command: unicast`` makes FreeSWITCH (switch_ivr.c,
switch_ivr_activate_unicast) bind ``local-ip:local-port`` and, while the channel is
parked under our outbound socket, send every 20 ms frame the caller says as raw L16
8 kHz (320 bytes) to ``remote-ip:remote-port``; the frames we send back to its port
are played to the caller. What this module relies on, each pinned by
tests/freeswitch/test_unicast_facts.py against a real FreeSWITCH:

- nothing streams while an application runs on the channel, and ``playback``,
  ``play_and_get_digits``, ``speak`` or ``record`` end the unicast for good, so once
  listening starts every prompt of the call goes through this stream until
  :meth:`UnicastStream.lost` is called;
- a second ``unicast`` on the same channel is torn down 20 ms later: one per call;
- ``transport: tcp`` silently uses UDP: only UDP is asked for;
- ``+OK`` says nothing about success: :meth:`open` waits for the first frame;
- a 20 ms tick without a caller's audio frame comes as 320 bytes of 0xFF (the CNG
  frame): while an RFC 2833 digit plays, but also for a lost or late packet and while
  the caller's phone sends no audio (silence suppression). :class:`KeyFill` tells a
  key press from the others by the length of the run.

Both sockets are on 127.0.0.1 (the ESL application runs next to FreeSWITCH).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import wave
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from payivr.esl.channel import CallerGone
from payivr.speech.audio import FRAME_BYTES, FRAME_MS, RATE
from payivr.speech.listener import KeyPressed

LOOPBACK = "127.0.0.1"
# A key press is a run of fill frames as long as its RFC 2833 event: at least 60 ms
# (phones send 40-100 ms at the very least; one or two lost or late packets are
# shorter) and at most 2 s (a longer run is a phone sending no audio, not a key).
KEY_FILL_MIN_FRAMES = 3
KEY_FILL_MAX_FRAMES = 100
SILENT_FRAME = bytes(FRAME_BYTES)
FIRST_FRAME_TIMEOUT_S = 1.0
FRAME_QUEUE = 500  # 10 s of audio: a reader that stops reading loses old frames


class StreamUnavailable(Exception):
    """No audio arrived after ``unicast`` (or the stream was already used up)."""


@runtime_checkable
class MessageChannel(Protocol):
    """A channel that can send a raw ``sendmsg`` (payivr.esl.connection)."""

    @property
    def uuid(self) -> str: ...

    @property
    def hungup(self) -> bool: ...

    async def send_message(self, headers: Mapping[str, str]) -> None: ...


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 free now, for FreeSWITCH's end of the stream."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.frames: asyncio.Queue[bytes] = asyncio.Queue(maxsize=FRAME_QUEUE)
        self.peer: tuple[str, int] | None = None
        self.first = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.peer is not None and addr != self.peer:
            return  # only FreeSWITCH's end of this call's stream
        if self.frames.full():
            self.frames.get_nowait()
        self.frames.put_nowait(data)
        self.first.set()


def is_key_fill(frame: bytes) -> bool:
    """A frame of FreeSWITCH's 0xFF fill: sent while an RFC 2833 digit plays and for
    every tick without the caller's audio (docs/dictation.md); with
    ``sensitive_dtmf`` on no DTMF event reaches us, so a run of it is how a key
    press shows (KeyFill)."""
    return len(frame) >= 2 and frame.count(0xFF) == len(frame)


class KeyFill:
    """Key presses in the caller's frames, told from missing audio (module doc).

    :meth:`frame` turns fill into silence and raises KeyPressed when a run of fill as
    long as a digit ends with the caller's audio again, so a key is seen once it is
    released. A run that is too short (lost packets) or too long (no audio sent) is
    just silence."""

    def __init__(self) -> None:
        self.run = 0

    def frame(self, frame: bytes) -> bytes:
        if is_key_fill(frame):
            self.run += 1
            return SILENT_FRAME
        run, self.run = self.run, 0
        if KEY_FILL_MIN_FRAMES <= run <= KEY_FILL_MAX_FRAMES:
            raise KeyPressed()
        return frame


class UnicastStream:
    """One call's audio, both ways, over loopback UDP."""

    def __init__(
        self,
        channel: MessageChannel,
        transport: asyncio.DatagramTransport,
        receiver: _Receiver,
        fs_port: int,
    ) -> None:
        self.channel = channel
        self._transport = transport
        self._receiver = receiver
        self._fs = (LOOPBACK, fs_port)
        self._closed = False
        self._keys = KeyFill()

    @classmethod
    async def open(
        cls, channel: MessageChannel, *, first_frame_timeout_s: float = FIRST_FRAME_TIMEOUT_S
    ) -> UnicastStream:
        loop = asyncio.get_running_loop()
        receiver = _Receiver()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: receiver, local_addr=(LOOPBACK, 0)
        )
        our_port = transport.get_extra_info("sockname")[1]
        fs_port = free_udp_port()
        receiver.peer = (LOOPBACK, fs_port)
        stream = cls(channel, transport, receiver, fs_port)
        try:
            await channel.send_message(
                {
                    "call-command": "unicast",
                    "local-ip": LOOPBACK,
                    "local-port": str(fs_port),
                    "remote-ip": LOOPBACK,
                    "remote-port": str(our_port),
                    "transport": "udp",
                }
            )
            await asyncio.wait_for(receiver.first.wait(), first_frame_timeout_s)
        except TimeoutError:
            stream.lost()
            raise StreamUnavailable("no audio after unicast") from None
        except BaseException:
            stream.lost()
            raise
        return stream

    @property
    def usable(self) -> bool:
        return not self._closed and not self.channel.hungup

    def lost(self) -> None:
        """Stop using the stream (an application ran, the call ended): drop the
        frames still queued and close our socket. It cannot be opened again."""
        self._closed = True
        self._transport.close()
        while not self._receiver.frames.empty():
            self._receiver.frames.get_nowait()

    def drain(self) -> None:
        """Forget what the caller said before now (heard during a prompt), but not a
        key pressed meanwhile (KeyPressed)."""
        while not self._receiver.frames.empty():
            self._keys.frame(self._receiver.frames.get_nowait())

    async def frames(self) -> AsyncIterator[bytes]:
        """The caller's frames as they come (fill as silence); KeyPressed when a key
        was pressed, CallerGone when the call ends."""
        while True:
            if not self.usable:
                raise CallerGone()
            try:
                frame = await asyncio.wait_for(self._receiver.frames.get(), 4 * FRAME_MS / 1000)
            except TimeoutError:
                # FreeSWITCH stops sending while the call is gone; a silent channel
                # still streams, so a gap this long means no frames will come.
                if self.channel.hungup:
                    raise CallerGone() from None
                continue
            yield self._keys.frame(frame)

    async def play(self, pcm: bytes, *, barge_in: bool = True) -> None:
        """Send ``pcm`` (L16 8 kHz) to the caller, one frame every 20 ms, on an
        absolute schedule so the pacing does not drift. With ``barge_in`` a key press
        heard meanwhile stops the playing and raises KeyPressed."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, offset in enumerate(range(0, len(pcm), FRAME_BYTES)):
            if not self.usable:
                raise CallerGone()
            frame = pcm[offset : offset + FRAME_BYTES]
            if len(frame) < FRAME_BYTES:
                frame += bytes(FRAME_BYTES - len(frame))
            self._transport.sendto(frame, self._fs)
            if barge_in:
                self.drain()
            delay = start + (index + 1) * FRAME_MS / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.lost()


def read_l16(path: Path | str) -> bytes:
    """The samples of a prompt file (8 kHz mono 16-bit WAV, as prompts_build makes)."""
    with wave.open(str(path), "rb") as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (RATE, 1, 2):
            raise ValueError(f"{path}: not 8 kHz mono 16-bit")
        return wav.readframes(wav.getnframes())
