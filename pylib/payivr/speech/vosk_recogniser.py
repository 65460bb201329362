"""The Vosk recogniser: an operator's model per language (es, pt, nl; en too if
given), its vocabulary restricted to the listen's digit (or yes/no) words.

Vosk is optional (``pip install payivr[vosk]``) and no model ships with payivr:
operators download one (alphacephei.com/vosk/models, the "small" models suit a
phone line) and name its directory in ``services.esl.speech.vosk_models``. Vosk
takes 8 kHz audio as it comes from the call.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from payivr.core.secrets import SecretDigits
from payivr.core.speech_input import Grammar, words_to_digits
from payivr.speech.audio import RATE
from payivr.speech.quiet import silence_vosk
from payivr.speech.utterance import StreamingUtterance


class VoskRecogniser:
    def __init__(self, models: Mapping[str, Path]) -> None:
        silence_vosk()
        self._vosk: Any = importlib.import_module("vosk")
        # Loading a model takes seconds and hundreds of MB: once per process.
        self._models = {lang: self._vosk.Model(str(path)) for lang, path in models.items()}

    def languages(self) -> frozenset[str]:
        return frozenset(self._models)

    def utterance(self, grammar: Grammar) -> VoskUtterance:
        model = self._models.get(grammar.language)
        if model is None:
            raise ValueError(f"no Vosk model configured for {grammar.language!r}")
        # "[unk]" lets anything else be heard as unknown rather than forced into a digit.
        vocabulary = json.dumps([*sorted(grammar.words), "[unk]"], ensure_ascii=False)
        return VoskUtterance(self._vosk.KaldiRecognizer(model, RATE, vocabulary), grammar)


class VoskUtterance(StreamingUtterance):
    def __init__(self, recognizer: Any, grammar: Grammar) -> None:
        super().__init__(grammar)
        self._recognizer: Any = recognizer

    def _process(self, pcm: bytearray, *, final: bool) -> None:
        if self._recognizer is not None:
            self._recognizer.AcceptWaveform(bytes(pcm))

    def _conclude(self) -> SecretDigits | None:
        if self._recognizer is None:
            return None
        words = json.loads(self._recognizer.FinalResult()).get("text", "").split()
        return words_to_digits(words, self._grammar)

    def _abort(self) -> None:
        # A recogniser per utterance: dropping it drops what it heard.
        self._recognizer = None
