"""FreeSWITCH's ``unicast`` as the fake call plays it: a caller who speaks.

When the application sends ``sendmsg`` with ``call-command: unicast``, the peer
binds ``local-port`` on 127.0.0.1 and sends one 320-byte L16 frame every 20 ms to
``remote-port``, as switch_ivr.c does for a parked channel: the caller's speech
(the corpus) or silence. Frames the application sends are the prompts the caller
hears; the caller waits for each prompt to end (200 ms with nothing received)
before saying its next ``Speak`` (or pressing a key: 0xFF fill, as FreeSWITCH
streams while an RFC 2833 digit plays). As in FreeSWITCH, any playback-type
application ends the stream for good, and a second ``unicast`` is torn down at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.esl.peer import FakeCall

FRAME = 320
SILENCE = bytes(FRAME)
KEY_FILL = b"\xff" * FRAME
PROMPT_END_S = 0.2
# Applications whose run ends the unicast (switch_core_session_reset in their path).
ENDS_UNICAST = frozenset({"playback", "play_and_get_digits", "say", "speak", "record"})


@dataclass(frozen=True)
class Speak:
    """The caller says this audio (L16 8 kHz) after the prompt that asks for it."""

    audio: bytes


@dataclass(frozen=True)
class Press:
    """The caller presses a key while listened to (barge-in)."""


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, caller: UnicastCaller) -> None:
        self.caller = caller

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.caller.heard(data)


class UnicastCaller:
    def __init__(self, call: FakeCall, headers: dict[str, str]) -> None:
        self.call = call
        self.local = int(headers.get("local-port", "8025"))
        self.remote = int(headers.get("remote-port", "8026"))
        self.transport: asyncio.DatagramTransport | None = None
        self.task: asyncio.Task[None] | None = None
        self.received = bytearray()  # everything the application played to the caller
        self.frames_received = 0
        self.frames_sent = 0
        self._last_heard = 0.0
        self._heard_since_spoke = False
        self._speaking = b""

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: _Socket(self), local_addr=("127.0.0.1", self.local)
        )
        self.task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.transport is not None:
            self.transport.close()

    def heard(self, frame: bytes) -> None:
        self.frames_received += 1
        self.received += frame
        self._last_heard = asyncio.get_running_loop().time()
        self._heard_since_spoke = True

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        with contextlib.suppress(asyncio.CancelledError):
            while not self.call.hungup:
                frame = self._next(loop.time())
                if frame is None:
                    return
                if self.transport is not None:
                    self.transport.sendto(frame, ("127.0.0.1", self.remote))
                    self.frames_sent += 1
                due += 0.02
                await asyncio.sleep(max(0.0, due - loop.time()))

    def _next(self, now: float) -> bytes | None:
        from tests.esl.peer import HangUp, Silence

        if self._speaking:
            frame, self._speaking = self._speaking[:FRAME], self._speaking[FRAME:]
            return frame.ljust(FRAME, b"\0")
        prompt_over = self._heard_since_spoke and now - self._last_heard >= PROMPT_END_S
        if not prompt_over or not self.call.inputs:
            return SILENCE
        following = self.call.inputs[0]
        if isinstance(following, Speak):
            self.call.inputs.pop(0)
            self._speaking = following.audio
            self._heard_since_spoke = False
            return SILENCE
        if isinstance(following, Press):
            self.call.inputs.pop(0)
            self._speaking = KEY_FILL * 5
            self._heard_since_spoke = False
            return SILENCE
        if isinstance(following, Silence):
            self.call.inputs.pop(0)
            self._heard_since_spoke = False  # says nothing until prompted again
            return SILENCE
        if isinstance(following, HangUp):
            self.call.inputs.pop(0)
            self.call.caller_hangs_up()
            return None
        return SILENCE
