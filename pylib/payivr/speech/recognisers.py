"""The recognisers a decoding worker loads (payivr.speech.worker): one backend per
language, from the config. They decode in the worker's one thread, blocking."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from payivr.core.speech_input import Grammar
from payivr.speech.utterance import StreamingUtterance


class Backend(Protocol):
    """A recogniser as the worker drives it."""

    def languages(self) -> frozenset[str]: ...

    def utterance(self, grammar: Grammar) -> StreamingUtterance: ...

    def running_mean(self) -> str:
        """What the last utterance left for the next one (pocketsphinx's cepstral
        mean, 13 numbers), or "" (nothing carried)."""
        ...

    def start_from_mean(self, mean: str) -> None:
        """Start the next utterance from ``mean`` (one ``running_mean`` gave)."""
        ...


def languages_configured(*, pocketsphinx: bool, vosk_models: Mapping[str, Path]) -> frozenset[str]:
    """The languages ``build_backends`` will have, without loading anything."""
    from payivr.speech.pocketsphinx_recogniser import LANGUAGE

    return frozenset(vosk_models) | ({LANGUAGE} if pocketsphinx else frozenset())


def build_backends(*, pocketsphinx: bool, vosk_models: Mapping[str, Path]) -> dict[str, Backend]:
    """Vosk models first (an operator's English model wins), then pocketsphinx."""
    backends: list[Backend] = []
    if vosk_models:
        from payivr.speech.vosk_recogniser import VoskRecogniser

        backends.append(VoskRecogniser(vosk_models))
    if pocketsphinx:
        from payivr.speech.pocketsphinx_recogniser import PocketsphinxRecogniser

        sphinx = PocketsphinxRecogniser()
        sphinx.warm()
        backends.append(sphinx)
    by_language: dict[str, Backend] = {}
    for backend in backends:
        for language in backend.languages():
            by_language.setdefault(language, backend)
    return by_language
