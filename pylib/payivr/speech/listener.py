"""One listen: frames in, one plan event out, the decoding in a worker thread.

    event = await listen(command, frames, recogniser, pool=pool)

``frames`` yields the call's audio as 20 ms L16 8 kHz frames (the ESL unicast
stream, or a test feeding the corpus). The listen waits up to the command's
``timeout_ms`` for speech to start and follows it to its end (``Endpointing``: 500
ms of silence, or the 8 s cap). While the caller speaks, the audio is decoded in ``pool``
every 100 ms (``Utterance.advance``); at the end only the rest of the search is
left, awaited with a deadline. A key press is raised by ``frames`` itself
(:class:`KeyPressed`: the unicast stream tells keys from audio) and ends the listen
with the audio dropped: the caller (the telephone) then carries out the command's
keypad entry instead.

Nothing heard survives: the audio is zeroed after decoding, the result is
SecretDigits, and a decoding that misses its deadline wipes its own result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from payivr.core.plan import Event, InputTimeout, Listen, SpeechHeard, SpeechUnclear
from payivr.core.secrets import SecretDigits
from payivr.core.speech_input import Endpointer, Endpointing, Grammar, Recogniser, Utterance
from payivr.speech.audio import FRAME_MS

PRE_ROLL_FRAMES = 15  # 300 ms before the detected start of speech, fed too
ADVANCE_FRAMES = 5  # decode every 100 ms of audio while the caller speaks
DEFAULT_ENDPOINTING = Endpointing()


class KeyPressed(Exception):
    """The caller pressed a key while listened to (barge-in: keys always win)."""


@dataclass(frozen=True)
class Timing:
    """What the benchmark wants to know about a listen (no content, only times)."""

    speech_end: float  # loop time the endpointer declared the end of speech
    result: float  # loop time the decoding answered


async def listen(
    command: Listen,
    language: str,
    frames: AsyncIterator[bytes],
    recogniser: Recogniser,
    *,
    pool: concurrent.futures.Executor | None = None,
    endpointing: Endpointing = DEFAULT_ENDPOINTING,
    decode_timeout_s: float = 3.0,
    timings: list[Timing] | None = None,
) -> Event:
    grammar = Grammar(language, command.length)
    utterance = recogniser.utterance(grammar)
    endpointer = Endpointer(endpointing)
    pre_roll: deque[bytes] = deque(maxlen=PRE_ROLL_FRAMES)
    waited_ms = 0
    queued = 0  # frames fed since the last decoding step started
    step: asyncio.Future[None] | None = None
    loop = asyncio.get_running_loop()
    try:
        async for frame in frames:
            was_started = endpointer.started
            endpointer.push(frame)
            if not endpointer.started:
                pre_roll.append(frame)
                waited_ms += FRAME_MS
                if waited_ms >= command.timeout_ms:
                    break
                continue
            if not was_started:
                for early in pre_roll:
                    utterance.feed(early)
                pre_roll.clear()
            utterance.feed(frame)
            queued += 1
            if step is not None and step.done():
                step.result()  # a decoding error ends the listen here
                step = None
            if endpointer.ended:
                break
            if step is None and queued >= ADVANCE_FRAMES:
                step = loop.run_in_executor(pool, utterance.advance)
                queued = 0
    except BaseException:  # a key, a hang-up, a cancel: what was fed is zeroed
        utterance.discard()
        if step is not None:
            step.add_done_callback(_retrieve)
        raise
    finally:
        pre_roll.clear()
    if not endpointer.started:
        utterance.discard()
        return InputTimeout(command.field)
    speech_end = loop.time()
    digits = await _decode(utterance, step, pool, decode_timeout_s)
    if timings is not None:
        timings.append(Timing(speech_end, loop.time()))
    if digits is None:
        return SpeechUnclear(command.field)
    return SpeechHeard(command.field, digits)


async def _decode(
    utterance: Utterance,
    step: asyncio.Future[None] | None,
    pool: concurrent.futures.Executor | None,
    timeout_s: float,
) -> SecretDigits | None:
    loop = asyncio.get_running_loop()

    async def rest() -> SecretDigits | None:
        try:
            if step is not None:
                await step  # the decoding step in flight, then the end of the search
        except BaseException:
            utterance.discard()
            raise
        return await loop.run_in_executor(pool, utterance.finish)

    future = asyncio.ensure_future(rest())
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout_s)
    except TimeoutError:
        # Too slow: the caller is asked again. Whatever the decoder still finds
        # is wiped when it arrives.
        future.add_done_callback(_wipe_late_result)
        return None


def _retrieve(step: asyncio.Future[None]) -> None:
    """An abandoned decoding step's outcome, read so that asyncio does not report
    it (the utterance was discarded: nothing comes of it)."""
    if not step.cancelled():
        step.exception()


def _wipe_late_result(future: asyncio.Future[SecretDigits | None]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    late = future.result()
    if late is not None:
        late.wipe()
