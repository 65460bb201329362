"""The process's recogniser: one backend per language, from the config."""

from __future__ import annotations

from payivr.core.config_types import SpeechConfig
from payivr.core.speech_input import Grammar, Recogniser, Utterance


class ByLanguage:
    """Routes each listen to the backend that has its language."""

    def __init__(self, backends: list[Recogniser]) -> None:
        self._by_language: dict[str, Recogniser] = {}
        for backend in backends:
            for language in backend.languages():
                self._by_language.setdefault(language, backend)

    def languages(self) -> frozenset[str]:
        return frozenset(self._by_language)

    def utterance(self, grammar: Grammar) -> Utterance:
        backend = self._by_language.get(grammar.language)
        if backend is None:
            raise ValueError(f"no recogniser for {grammar.language!r}")
        return backend.utterance(grammar)


def build_recogniser(config: SpeechConfig) -> ByLanguage:
    """Vosk models first (an operator's English model wins), then pocketsphinx."""
    backends: list[Recogniser] = []
    if config.vosk_models:
        from payivr.speech.vosk_recogniser import VoskRecogniser

        backends.append(VoskRecogniser(config.vosk_models))
    if config.pocketsphinx:
        from payivr.speech.pocketsphinx_recogniser import PocketsphinxRecogniser

        sphinx = PocketsphinxRecogniser()
        sphinx.warm()
        backends.append(sphinx)
    return ByLanguage(backends)
