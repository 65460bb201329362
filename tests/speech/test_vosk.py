"""Vosk with an operator's model, per language. No model ships with payivr and none
is downloaded: set PAYIVR_VOSK_MODELS="es=/path/to/model,pt=...,nl=..." to run."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from payivr.core.speech_input import Grammar
from tests.fixtures.speech.make_corpus import corpus


def configured() -> dict[str, Path]:
    pairs = [p.split("=", 1) for p in os.environ.get("PAYIVR_VOSK_MODELS", "").split(",") if p]
    return {lang: Path(path) for lang, path in pairs}


@pytest.mark.parametrize("language", ["es", "pt", "nl"])
def test_vosk_recognises_the_corpus_digits(language: str) -> None:
    model = configured().get(language)
    if model is None:
        pytest.skip(f"no Vosk model for {language}: set PAYIVR_VOSK_MODELS (docs/dictation.md)")
    if importlib.util.find_spec("vosk") is None:
        pytest.skip("vosk is not installed: pip install 'payivr[vosk]'")
    from payivr.speech.vosk_recogniser import VoskRecogniser

    recogniser = VoskRecogniser({language: model})
    root, items = corpus([language])
    right = total = 0
    for item in items:
        if item.noisy:
            continue
        length = 0 if item.kind == "yesno" else len(item.digits)
        utterance = recogniser.utterance(Grammar(language, length))
        utterance.feed(item.audio(root))
        digits = utterance.finish()
        total += 1
        if digits is not None:
            right += digits.reveal() == item.digits
            digits.wipe()
    assert total and right / total >= 0.8, (right, total)
