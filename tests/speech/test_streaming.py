"""Decoding while the caller speaks: the listen hands audio to its decoding worker
as it arrives, so at the end of speech little is left; buffers are zeroed on every
path; what the recogniser carries from one utterance to the next is a cepstral
mean, kept by the pool."""

from __future__ import annotations

import array
import asyncio

from payivr.core.plan import Collect, Field, Listen, SpeechHeard
from payivr.core.speech_input import Grammar
from payivr.speech.audio import upsample_16k
from payivr.speech.listener import listen
from payivr.speech.pocketsphinx_recogniser import PocketsphinxRecogniser
from tests.speech.corpus import english, first
from tests.speech.pool import decoding_pool, keep_utterances, paced

FRAME = 320
KEYED = Collect(Field.CARD_NUMBER, "enter-card-number", 1, 19, 15000, 5000)


def chunk_audio() -> bytes:
    root, items = english()
    return first(items, voice="flite-rms-95", kind="chunk", card=0, chunk=0).audio(root)


def test_the_audio_is_decoded_while_the_caller_speaks() -> None:
    command = Listen(Field.CARD_NUMBER, "say-card-number", 4, 2000, KEYED)
    audio = bytes(FRAME * 10) + chunk_audio() + bytes(FRAME * 30)
    steps: list[tuple[str, int]] = []  # (step, bytes sent to the worker)

    async def run() -> object:
        with decoding_pool() as pool:
            kept = keep_utterances(pool)

            async def go() -> object:
                return await listen(command, "en", paced(audio), pool)

            task = asyncio.ensure_future(go())
            while not kept:
                await asyncio.sleep(0.005)
            utterance = kept[0]
            advance, finish = utterance.advance, utterance.finish

            async def advanced() -> None:
                steps.append(("advance", len(utterance._pending)))
                await advance()

            async def finished():  # type: ignore[no-untyped-def]
                steps.append(("finish", len(utterance._pending)))
                return await finish()

            utterance.advance = advanced  # type: ignore[method-assign]
            utterance.finish = finished  # type: ignore[method-assign]
            event = await task
            assert len(utterance._pending) == 0
            assert utterance.cpu_s > utterance.cpu_at_end_s > 0
            return event

    event = asyncio.run(run())
    assert isinstance(event, SpeechHeard) and event.digits.reveal() == "4111"
    event.digits.wipe()
    during = sum(n for step, n in steps if step == "advance")
    at_end = sum(n for step, n in steps if step == "finish")
    # All but the last few frames were decoded before the end of speech.
    assert during > 0.8 * (during + at_end), steps
    assert at_end <= FRAME * 10, steps


def test_a_discard_while_a_block_is_decoded_ends_the_step_and_the_worker_carries_on() -> None:
    async def run() -> None:
        with decoding_pool() as pool:
            utterance = pool.utterance(Grammar("en", 4))
            utterance.feed(chunk_audio())
            step = asyncio.ensure_future(utterance.advance())
            await asyncio.sleep(0)  # the block is on its way to the worker
            utterance.discard()  # a key press while it is decoded
            await asyncio.wait_for(step, 5)
            utterance.feed(b"\1\2" * 160)  # audio after the discard is not kept
            assert len(utterance._pending) == 0
            assert await utterance.finish() is None
            assert utterance.id not in utterance._worker.utterances
            # The worker dropped that utterance and decodes the next one.
            again = pool.utterance(Grammar("en", 4))
            again.feed(chunk_audio())
            digits = await asyncio.wait_for(again.finish(), 10)
            assert digits is not None and digits.reveal() == "4111"
            digits.wipe()

    asyncio.run(run())


def test_the_running_mean_is_carried_by_the_pool_between_workers() -> None:
    """What one utterance leaves for the next (the cepstral mean, 13 numbers) is
    kept by the ESL process and handed to whichever worker decodes next."""

    async def run() -> None:
        with decoding_pool(2) as pool:
            assert pool.starting_mean("en") == ""
            # Two listens at once go to the two workers; the second opens its
            # decoding (and takes the mean) after the first has finished.
            first_one, second = pool.utterance(Grammar("en", 4)), pool.utterance(Grammar("en", 4))
            assert {first_one._worker.number, second._worker.number} == {0, 1}
            means = []
            for utterance in (first_one, second):
                utterance.feed(chunk_audio())
                digits = await asyncio.wait_for(utterance.finish(), 30)
                assert digits is not None and digits.reveal() == "4111"
                digits.wipe()
                means.append(pool.starting_mean("en"))
            for mean in means:
                numbers = [float(v) for v in mean.split(",")]
                assert len(numbers) == 13
            assert means[0] != means[1]

    asyncio.run(run())


def test_what_an_utterance_leaves_behind_is_a_cepstral_mean_of_13_numbers() -> None:
    """The state carried from one utterance to the next (the running cepstral mean)
    holds no audio and no words: 13 averaged cepstral coefficients."""
    recogniser = PocketsphinxRecogniser()
    recogniser.warm()
    before = dict(vars(recogniser))
    utterance = recogniser.utterance(Grammar("en", 4))
    utterance.feed(chunk_audio())
    digits = utterance.finish()
    assert digits is not None
    digits.wipe()
    after = dict(vars(recogniser))
    assert before.pop("_cmn") == "" and len(after.pop("_cmn").split(",")) == 13
    assert after == before
    assert len(utterance._head) == 0 and utterance._decoder is None


def test_upsampling_block_by_block_is_the_same_as_all_at_once() -> None:
    pcm = bytearray(chunk_audio()[: FRAME * 30])
    whole = upsample_16k(pcm)
    parts = array.array("h")
    previous = 0
    for i in range(0, len(pcm), FRAME * 5):
        block = pcm[i : i + FRAME * 5]
        parts.extend(upsample_16k(block, previous))
        previous = int.from_bytes(block[-2:], "little", signed=True)
    assert parts == whole and len(whole) == len(pcm)
    assert pcm == bytearray(chunk_audio()[: FRAME * 30])  # the input is left as it was
