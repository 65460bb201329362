"""The listen loop with pocketsphinx: speech, silence, a key press, a missed deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from payivr.core.plan import Collect, Field, InputTimeout, Listen, SpeechHeard, SpeechUnclear
from payivr.speech.listener import KeyPressed, listen
from payivr.speech.pocketsphinx_recogniser import PocketsphinxRecogniser
from tests.speech.corpus import english, first

FRAME = 320
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


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def heard_on_a_pool(*audio: bytes, decode_timeout_s: float | None = None) -> object:
    """What a listen for 4 digits gives, decoding on a worker thread as the application does."""
    recogniser = PocketsphinxRecogniser()
    options = {} if decode_timeout_s is None else {"decode_timeout_s": decode_timeout_s}
    with ThreadPoolExecutor(1) as pool:
        return run(listen(command(), "en", frames(*audio), recogniser, pool=pool, **options))


def test_a_chunk_said_is_heard_as_secret_digits() -> None:
    event = heard_on_a_pool(bytes(FRAME * 10), chunk_audio(), bytes(FRAME * 40))
    assert isinstance(event, SpeechHeard)
    assert event.digits.reveal() == "4111"
    assert "4111" not in repr(event)


def test_silence_until_the_timeout_is_no_input() -> None:
    recogniser = PocketsphinxRecogniser()
    event = run(listen(command(timeout_ms=400), "en", frames(bytes(FRAME * 100)), recogniser))
    assert event == InputTimeout(Field.CARD_NUMBER)


async def frames_then_a_key(audio: bytes) -> AsyncIterator[bytes]:
    """The caller's audio, then a key press raised by the stream (as KeyFill does)."""
    async for frame in frames(audio):
        yield frame
    raise KeyPressed()


def test_a_key_press_from_the_stream_ends_the_listen_and_the_audio_is_dropped() -> None:
    recogniser = PocketsphinxRecogniser()
    utterances = []
    original = recogniser.utterance

    def keep(grammar):  # type: ignore[no-untyped-def]
        utterances.append(original(grammar))
        return utterances[-1]

    recogniser.utterance = keep  # type: ignore[method-assign]
    speech = chunk_audio()[: FRAME * 40]
    with pytest.raises(KeyPressed):
        run(listen(command(), "en", frames_then_a_key(speech), recogniser))
    assert len(utterances[0]._pending) == 0


def test_a_decoding_past_its_deadline_is_unclear() -> None:
    event = heard_on_a_pool(chunk_audio(), bytes(FRAME * 40), decode_timeout_s=0.001)
    assert event == SpeechUnclear(Field.CARD_NUMBER)
