"""The pocketsphinx recogniser: its bundled en-US model, a JSGF grammar per listen.

Each listen's grammar allows exactly the digit words (or yes/no) it asks for, so
the decoder can only return what the plan wants or nothing useful. The audio is
decoded while the caller speaks (``advance``), so at the end of speech only the
last block and the end of the search are left (docs/dictation.md, "Figures").

Cepstral mean normalisation (CMN): decoding block by block normalises with a
running mean that starts from an initial value, and the model's (``40,3,-1``) is
far from a phone line's: short utterances never recovered from it (that is why
the audio was once decoded in one pass after the end of speech). So the search
waits for the first second of the utterance (300 ms before the speech and the
speech's start), folds the mean of its features into the running mean
(``get_cmn(update=True)``), then searches from the beginning with that mean. The
running mean an utterance starts from is the one the previous utterance of this
process ended with (the phone network's channel is much the same from call to
call; starting every utterance from the model's default instead lost a sixth of
the chunks). It is 13 averaged cepstral coefficients: nothing of what was said can
be read back from it.

``bestpath`` (a lattice search after the grammar search) is off: with these
fixed-length grammars it lost digits the grammar search had right, and it is most
of the work left at the end of speech (measured, docs/dictation.md).

Decoders are not thread-safe: the recogniser keeps a free list, one decoder per
utterance being decoded. A decoder knows only the digit and yes/no words (not the
130,000 words of the bundled dictionary): it loads in a tenth of a second and a few
MB, so one is created whenever none is free.
"""

from __future__ import annotations

import importlib
import queue
import threading
from pathlib import Path
from typing import Any

from payivr.core.secrets import SecretDigits
from payivr.core.speech_input import DIGIT_WORDS, YES_NO_WORDS, Grammar, words_to_digits
from payivr.speech.audio import upsample_16k, wipe, wipe_samples
from payivr.speech.quiet import silence_pocketsphinx
from payivr.speech.utterance import StreamingUtterance

LANGUAGE = "en"
# A little more silence between words than the default: callers pause between
# digits, and the synthetic corpus showed fewer dropped digits with it.
SILENCE_PROBABILITY = 0.1
# The audio whose features set an utterance's cepstral mean before the search
# starts: one second of 8 kHz L16 (the listen's 300 ms pre-roll and the speech's
# start; a shorter utterance is used whole).
HEAD_BYTES = 16000


def jsgf(grammar: Grammar) -> str:
    """The JSGF text of ``grammar``: exactly ``length`` digit words, or yes | no."""
    words = sorted(grammar.words)
    rule = "<w>" if grammar.yes_no else " ".join(["<w>"] * grammar.length)
    return f"#JSGF V1.0;\ngrammar payivr;\npublic <said> = {rule};\n<w> = {' | '.join(words)};\n"


def pronunciations(dictionary: Path, words: set[str]) -> list[tuple[str, str]]:
    """(word, phones) for ``words`` from a CMU dictionary, alternatives included
    (``zero(2)``)."""
    found: list[tuple[str, str]] = []
    with dictionary.open(encoding="utf-8") as lines:
        for line in lines:
            entry, _, phones = line.strip().partition(" ")
            if entry.split("(", 1)[0] in words:
                found.append((entry, phones.strip()))
    missing = words - {entry.split("(", 1)[0] for entry, _ in found}
    if missing:
        raise ValueError(f"no pronunciation for {sorted(missing)} in {dictionary}")
    return found


class PocketsphinxRecogniser:
    def __init__(self) -> None:
        silence_pocketsphinx()
        self._module: Any = importlib.import_module("pocketsphinx")
        model = Path(self._module.get_model_path()) / "en-us"
        self._hmm = str(model / "en-us")
        words = set(DIGIT_WORDS[LANGUAGE]) | set(YES_NO_WORDS[LANGUAGE])
        self._words = pronunciations(model / "cmudict-en-us.dict", words)
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._cmn = ""  # the running cepstral mean of the last utterance (13 numbers)

    def languages(self) -> frozenset[str]:
        return frozenset({LANGUAGE})

    def utterance(self, grammar: Grammar) -> PocketsphinxUtterance:
        if grammar.language != LANGUAGE:
            raise ValueError(f"pocketsphinx has no model for {grammar.language!r}")
        return PocketsphinxUtterance(self, grammar)

    def warm(self) -> None:
        """Load one decoder now rather than on the first call."""
        self._release(self._acquire())

    def _new_decoder(self) -> Any:
        decoder = self._module.Decoder(
            hmm=self._hmm,
            dict=None,
            samprate=16000,
            lm=None,
            loglevel="FATAL",
            silprob=SILENCE_PROBABILITY,
            bestpath=False,
        )
        for n, (word, phones) in enumerate(self._words):
            decoder.add_word(word, phones, n == len(self._words) - 1)
        return decoder

    def _acquire(self) -> Any:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            return self._new_decoder()

    def _release(self, decoder: Any) -> None:
        self._free.put(decoder)

    def _starting_cmn(self, decoder: Any) -> str:
        """The mean the last utterance ended with (the model's before the first)."""
        with self._lock:
            return self._cmn or decoder.get_cmn(False)

    def _ended_with_cmn(self, cmn: str) -> None:
        with self._lock:
            self._cmn = cmn


class PocketsphinxUtterance(StreamingUtterance):
    def __init__(self, owner: PocketsphinxRecogniser, grammar: Grammar) -> None:
        super().__init__(grammar)
        self._owner = owner
        self._decoder: Any = None
        self._open = False  # an utterance is started on the decoder and not ended
        self._head = bytearray()  # the first second, held until the decoder starts
        self._previous = 0  # the last sample of the previous block (upsampling)

    def _process(self, pcm: bytearray, *, final: bool) -> None:
        if self._decoder is not None:
            self._search(pcm)
            return
        self._head += pcm
        if len(self._head) < HEAD_BYTES and not final:
            return
        head, self._head = self._head, bytearray()
        try:
            self._start(head)
            self._search(head)
        finally:
            wipe(head)

    def _start(self, head: bytearray) -> None:
        """Take a decoder, set its grammar and its cepstral mean from ``head``."""
        decoder = self._owner._acquire()
        self._decoder = decoder
        search = f"said{self._grammar.length}"
        decoder.add_jsgf_string(search, jsgf(self._grammar))
        decoder.activate_search(search)
        decoder.set_cmn(self._owner._starting_cmn(decoder))
        decoder.start_utt()
        self._open = True
        audio = upsample_16k(head)
        try:
            decoder.process_raw(memoryview(audio).cast("B"), no_search=True)
        finally:
            wipe_samples(audio)
        decoder.get_cmn(True)  # the mean of the head's features becomes the start
        decoder.end_utt()
        decoder.start_utt()

    def _search(self, pcm: bytearray) -> None:
        if len(pcm) < 2:
            return
        audio = upsample_16k(pcm, self._previous)
        self._previous = int.from_bytes(pcm[-2:], "little", signed=True)
        try:
            self._decoder.process_raw(memoryview(audio).cast("B"))
        finally:
            wipe_samples(audio)

    def _conclude(self) -> SecretDigits | None:
        decoder = self._decoder
        if decoder is None:
            return None
        decoder.end_utt()
        self._open = False
        self._owner._ended_with_cmn(decoder.get_cmn(False))
        hypothesis = decoder.hyp()
        if hypothesis is None:
            return None
        # The words exist as a str for this statement only (pocketsphinx hands
        # them over that way); nothing keeps or prints them.
        return words_to_digits(hypothesis.hypstr.split(), self._grammar)

    def _abort(self) -> None:
        wipe(self._head)
        decoder, self._decoder = self._decoder, None
        self._previous = 0
        if decoder is None:
            return
        if self._open:  # discarded mid-utterance: end it, its result unread
            self._open = False
            decoder.end_utt()
        self._owner._release(decoder)
