"""Decoding while the caller speaks: the listen hands audio to the decoder as it
arrives, so at the end of speech little is left; buffers are zeroed on every path;
what the recogniser carries from one utterance to the next is a cepstral mean."""

from __future__ import annotations

import array
import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from payivr.core.plan import Collect, Field, Listen, SpeechHeard
from payivr.core.speech_input import Grammar
from payivr.speech.audio import upsample_16k
from payivr.speech.listener import listen
from payivr.speech.pocketsphinx_recogniser import PocketsphinxRecogniser, PocketsphinxUtterance
from tests.speech.corpus import english, first

FRAME = 320
KEYED = Collect(Field.CARD_NUMBER, "enter-card-number", 1, 19, 15000, 5000)


def chunk_audio() -> bytes:
    root, items = english()
    return first(items, voice="flite-rms-95", kind="chunk", card=0, chunk=0).audio(root)


class Watched(PocketsphinxRecogniser):
    """The real recogniser; its utterances note how much audio each step decoded."""

    def __init__(self) -> None:
        super().__init__()
        self.utterances: list[WatchedUtterance] = []

    def utterance(self, grammar: Grammar) -> PocketsphinxUtterance:
        utterance = WatchedUtterance(self, grammar)
        self.utterances.append(utterance)
        return utterance


class WatchedUtterance(PocketsphinxUtterance):
    def __init__(self, owner: PocketsphinxRecogniser, grammar: Grammar) -> None:
        super().__init__(owner, grammar)
        self.blocks: list[tuple[str, int]] = []  # (step, bytes decoded)
        self.step = "advance"
        self.blocks_kept: list[bytearray] = []

    def finish(self):  # type: ignore[no-untyped-def]
        self.step = "finish"
        return super().finish()

    def _process(self, pcm: bytearray, *, final: bool) -> None:
        self.blocks.append((self.step, len(pcm)))
        self.blocks_kept.append(pcm)
        super()._process(pcm, final=final)


async def paced(audio: bytes) -> AsyncIterator[bytes]:
    """Frames at a call's pace (20 ms each), so decoding can keep up with them."""
    for i in range(0, len(audio), FRAME):
        await asyncio.sleep(0.02)
        yield audio[i : i + FRAME].ljust(FRAME, b"\0")


def test_the_audio_is_decoded_while_the_caller_speaks() -> None:
    recogniser = Watched()
    command = Listen(Field.CARD_NUMBER, "say-card-number", 4, 2000, KEYED)
    audio = bytes(FRAME * 10) + chunk_audio() + bytes(FRAME * 30)

    async def run() -> object:
        with ThreadPoolExecutor(1) as pool:
            return await listen(command, "en", paced(audio), recogniser, pool=pool)

    event = asyncio.run(run())
    assert isinstance(event, SpeechHeard) and event.digits.reveal() == "4111"
    event.digits.wipe()
    (utterance,) = recogniser.utterances
    during = sum(n for step, n in utterance.blocks if step == "advance")
    at_end = sum(n for step, n in utterance.blocks if step == "finish")
    # All but the last few frames were decoded before the end of speech.
    assert during > 0.8 * (during + at_end), utterance.blocks
    assert at_end <= FRAME * 10, utterance.blocks
    # Every block the decoder read was zeroed, and the queue is empty.
    assert all(len(block) == 0 for block in utterance.blocks_kept)
    assert len(utterance._pending) == 0


def test_a_discard_while_a_block_is_decoded_lets_the_decoder_go_after_it() -> None:
    recogniser = PocketsphinxRecogniser()
    utterance = recogniser.utterance(Grammar("en", 4))
    utterance.feed(chunk_audio())
    inside = threading.Event()
    release = threading.Event()
    original = utterance._process

    def slow(pcm: bytearray, *, final: bool) -> None:
        original(pcm, final=True)  # the decoder taken, its utterance open
        inside.set()
        release.wait(10)

    utterance._process = slow  # type: ignore[method-assign]
    worker = threading.Thread(target=utterance.advance)
    worker.start()
    assert inside.wait(10)
    utterance.discard()  # a key press: the block is being decoded
    utterance.feed(b"\1\2" * 160)  # audio after the discard is not kept
    assert utterance._decoder is not None  # still in use by the worker
    assert recogniser._free.qsize() == 0
    release.set()
    worker.join(10)
    assert utterance._decoder is None and not utterance._open
    assert len(utterance._pending) == 0
    assert utterance.finish() is None
    # The decoder went back to the free list with its utterance ended: the next
    # listen can start on it.
    assert recogniser._free.qsize() == 1
    again = recogniser.utterance(Grammar("en", 4))
    again.feed(chunk_audio())
    digits = again.finish()
    assert digits is not None and digits.reveal() == "4111"
    digits.wipe()


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
