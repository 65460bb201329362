"""What every recogniser's utterance does with the caller's audio: keep it in one
bytearray (RAM only) until the caller has stopped speaking, decode it in one pass,
and zero it whatever happens."""

from __future__ import annotations

from payivr.core.secrets import SecretDigits
from payivr.core.speech_input import Grammar
from payivr.speech.audio import wipe


class BufferedUtterance:
    """A listen's audio; a backend supplies `_decode`."""

    def __init__(self, grammar: Grammar) -> None:
        self._grammar = grammar
        self._audio = bytearray()

    def feed(self, pcm: bytes) -> None:
        self._audio += pcm

    def discard(self) -> None:
        wipe(self._audio)

    def finish(self) -> SecretDigits | None:
        """Decode what was fed (blocking: call it from a worker thread)."""
        try:
            return self._decode(self._audio)
        finally:
            wipe(self._audio)

    def _decode(self, audio: bytearray) -> SecretDigits | None:
        """The digits (or yes/no) heard in `audio`; wipe `audio` once the engine has it."""
        raise NotImplementedError
