"""The pocketsphinx recogniser: its bundled en-US model, a JSGF grammar per listen.

Each listen's grammar allows exactly the digit words (or yes/no) it asks for, so
the decoder can only return what the plan wants or nothing useful. Audio is kept
in one bytearray per utterance (RAM only) and decoded in one pass when the caller
has stopped speaking: pocketsphinx's live cepstral mean normalisation starts badly
on short utterances, the whole-utterance pass does not (measured in
bench/dictation.py). The buffer is zeroed as soon as the decoder has read it.

Decoders are not thread-safe: the recogniser keeps a pool of them, one per
concurrent listen, created on demand up to ``max_decoders``.
"""

from __future__ import annotations

import importlib
import queue
import threading
from typing import Any

from payivr.core.secrets import SecretDigits
from payivr.core.speech_input import Grammar, words_to_digits
from payivr.speech.audio import upsample_16k, wipe
from payivr.speech.quiet import silence_pocketsphinx
from payivr.speech.utterance import BufferedUtterance

LANGUAGE = "en"
# A little more silence between words than the default: callers pause between
# digits, and the synthetic corpus showed fewer dropped digits with it.
SILENCE_PROBABILITY = 0.1


def jsgf(grammar: Grammar) -> str:
    """The JSGF text of ``grammar``: exactly ``length`` digit words, or yes | no."""
    words = sorted(grammar.words)
    rule = "<w>" if grammar.yes_no else " ".join(["<w>"] * grammar.length)
    return f"#JSGF V1.0;\ngrammar payivr;\npublic <said> = {rule};\n<w> = {' | '.join(words)};\n"


class PocketsphinxRecogniser:
    def __init__(self, max_decoders: int = 8) -> None:
        silence_pocketsphinx()
        self._module: Any = importlib.import_module("pocketsphinx")
        self._free: queue.LifoQueue[Any] = queue.LifoQueue()
        self._created = 0
        self._lock = threading.Lock()
        self.max_decoders = max_decoders

    def languages(self) -> frozenset[str]:
        return frozenset({LANGUAGE})

    def utterance(self, grammar: Grammar) -> PocketsphinxUtterance:
        if grammar.language != LANGUAGE:
            raise ValueError(f"pocketsphinx has no model for {grammar.language!r}")
        return PocketsphinxUtterance(self, grammar)

    def warm(self) -> None:
        """Load one decoder now (a second or so) rather than on the first call."""
        self._release(self._acquire())

    def _new_decoder(self) -> Any:
        model = self._module.get_model_path()
        return self._module.Decoder(
            hmm=f"{model}/en-us/en-us",
            dict=f"{model}/en-us/cmudict-en-us.dict",
            samprate=16000,
            lm=None,
            loglevel="FATAL",
            silprob=SILENCE_PROBABILITY,
        )

    def _acquire(self) -> Any:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            create = self._created < self.max_decoders
            if create:
                self._created += 1
        if create:
            return self._new_decoder()
        return self._free.get(timeout=30)

    def _release(self, decoder: Any) -> None:
        self._free.put(decoder)


class PocketsphinxUtterance(BufferedUtterance):
    def __init__(self, owner: PocketsphinxRecogniser, grammar: Grammar) -> None:
        super().__init__(grammar)
        self._owner = owner

    def _decode(self, pcm: bytearray) -> SecretDigits | None:
        decoder = self._owner._acquire()
        try:
            audio = upsample_16k(pcm)
            wipe(pcm)
            search = f"said{self._grammar.length}"
            decoder.add_jsgf_string(search, jsgf(self._grammar))
            decoder.activate_search(search)
            decoder.start_utt()
            decoder.process_raw(audio, full_utt=True)
            decoder.end_utt()
            audio = b""
            hypothesis = decoder.hyp()
            if hypothesis is None:
                return None
            # The words exist as a str for this statement only (pocketsphinx hands
            # them over that way); nothing keeps or prints them.
            return words_to_digits(hypothesis.hypstr.split(), self._grammar)
        finally:
            self._owner._release(decoder)
