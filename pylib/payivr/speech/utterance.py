"""What every recogniser's utterance does with the caller's audio, inside a decoding
worker (payivr.speech.worker): queue it in one bytearray (RAM only), hand it to the
decoder block by block (``advance``) while the caller speaks, finish the search at
the end of speech, and zero every buffer whatever happens.

The worker has one thread and handles one message at a time, so an utterance is
never used by two threads at once.
"""

from __future__ import annotations

from payivr.core.secrets import SecretDigits
from payivr.core.speech_input import Grammar
from payivr.speech.audio import wipe


class StreamingUtterance:
    """A listen's audio; a backend supplies `_process`, `_conclude` and `_abort`."""

    def __init__(self, grammar: Grammar) -> None:
        self._grammar = grammar
        self._pending = bytearray()
        self._closed = False  # discarded or finished: no more audio, decoder let go

    def feed(self, pcm: bytes | bytearray) -> None:
        if not self._closed:
            self._pending += pcm

    def advance(self) -> None:
        """Decode the audio queued so far and zero it."""
        block = self._take(closing=False)
        if block is None:
            return
        try:
            self._process(block, final=False)
        finally:
            wipe(block)

    def finish(self) -> SecretDigits | None:
        """Decode what is left and conclude: the digits heard, or None."""
        block = self._take(closing=True)
        if block is None:
            return None
        try:
            self._process(block, final=True)
            wipe(block)
            return self._conclude()
        finally:
            wipe(block)
            self._abort()

    def discard(self) -> None:
        """Zero what was fed and let the decoder go, unread."""
        if self._closed:
            return
        self._closed = True
        wipe(self._pending)
        self._abort()

    def _take(self, *, closing: bool) -> bytearray | None:
        """The queued audio (the queue starts afresh), or None once closed."""
        if self._closed:
            return None
        self._closed = closing
        block, self._pending = self._pending, bytearray()
        return block

    def _process(self, pcm: bytearray, *, final: bool) -> None:
        """Give ``pcm`` to the decoder (it is zeroed afterwards); ``final``: the
        last block of the utterance."""
        raise NotImplementedError

    def _conclude(self) -> SecretDigits | None:
        """End the utterance: the digits (or yes/no) heard, or None."""
        raise NotImplementedError

    def _abort(self) -> None:
        """Let go of the decoder and whatever it holds (idempotent)."""
        raise NotImplementedError
