"""The listen loop with pocketsphinx in a decoding worker: speech, silence, a key
press, a missed deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from payivr.core.plan import Collect, Field, InputTimeout, Listen, SpeechHeard, SpeechUnclear
from payivr.core.secrets import SecretDigits
from payivr.speech.listener import KeyPressed, listen
from tests.speech.corpus import english, first
from tests.speech.pool import FRAME, decoding_pool, keep_utterances

KEYED = Collect(Field.CARD_NUMBER, "enter-card-number", 1, 19, 15000, 5000)


def command(length: int = 4, timeout_ms: int = 2000) -> Listen:
    return Listen(Field.CARD_NUMBER, "say-card-number", length, timeout_ms, KEYED)


async def frames(*parts: bytes) -> AsyncIterator[bytes]:
    audio = b"".join(parts)
    for i in range(0, len(audio), FRAME):
        yield audio[i : i + FRAME].ljust(FRAME, b"\0")


def chunk_audio() -> bytes:
    root, items = english()
    return first(items, voice="flite-rms-95", kind="chunk", card=0, chunk=0).audio(root)


def test_a_chunk_said_is_heard_as_secret_digits() -> None:
    async def run() -> object:
        with decoding_pool() as pool:
            audio = frames(bytes(FRAME * 10), chunk_audio(), bytes(FRAME * 40))
            return await listen(command(), "en", audio, pool)

    event = asyncio.run(run())
    assert isinstance(event, SpeechHeard)
    assert event.digits.reveal() == "4111"
    assert "4111" not in repr(event)


def test_silence_until_the_timeout_is_no_input() -> None:
    async def run() -> object:
        with decoding_pool() as pool:
            kept = keep_utterances(pool)
            event = await listen(command(timeout_ms=400), "en", frames(bytes(FRAME * 100)), pool)
            assert len(kept[0]._pending) == 0
            return event

    assert asyncio.run(run()) == InputTimeout(Field.CARD_NUMBER)


async def frames_then_a_key(audio: bytes) -> AsyncIterator[bytes]:
    """The caller's audio, then a key press raised by the stream (as KeyFill does)."""
    async for frame in frames(audio):
        yield frame
    raise KeyPressed()


def test_a_key_press_from_the_stream_ends_the_listen_and_the_audio_is_dropped() -> None:
    async def run() -> None:
        with decoding_pool() as pool:
            kept = keep_utterances(pool)
            speech = chunk_audio()[: FRAME * 40]
            with pytest.raises(KeyPressed):
                await listen(command(), "en", frames_then_a_key(speech), pool)
            assert len(kept[0]._pending) == 0
            assert kept[0].id not in kept[0]._worker.utterances

    asyncio.run(run())


def test_a_decoding_past_its_deadline_is_unclear_and_its_late_result_wiped() -> None:
    results: list[SecretDigits | None] = []

    async def run() -> object:
        with decoding_pool() as pool:
            opened = pool.utterance

            def recorded(grammar):  # type: ignore[no-untyped-def]
                utterance = opened(grammar)
                finish = utterance.finish

                async def finished() -> SecretDigits | None:
                    results.append(await finish())
                    return results[-1]

                utterance.finish = finished  # type: ignore[method-assign]
                return utterance

            pool.utterance = recorded  # type: ignore[method-assign]
            audio = frames(chunk_audio(), bytes(FRAME * 40))
            event = await listen(command(), "en", audio, pool, decode_timeout_s=0.001)
            # The worker still answers; the answer reaches nobody but the wipe.
            for _ in range(500):
                if results:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0)
            return event

    assert asyncio.run(run()) == SpeechUnclear(Field.CARD_NUMBER)
    (late,) = results
    assert late is not None and late.wiped
