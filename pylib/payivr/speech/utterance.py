"""What every recogniser's utterance does with the caller's audio: queue it in one
bytearray (RAM only) as it arrives, hand it to the decoder while the caller speaks
(``advance``, in a worker thread), finish the search at the end of speech, and zero
every buffer whatever happens.

Threads: ``feed`` and ``discard`` run on the event loop, ``advance`` and ``finish``
in a worker thread, one at a time per utterance (the listen waits for one before
starting the next). ``discard`` may come while an ``advance`` runs (a key press, a
hang-up): then the worker aborts the decoding when it is done with its block.
"""

from __future__ import annotations

import threading

from payivr.core.secrets import SecretDigits
from payivr.core.speech_input import Grammar
from payivr.speech.audio import wipe


class StreamingUtterance:
    """A listen's audio; a backend supplies `_process`, `_conclude` and `_abort`."""

    def __init__(self, grammar: Grammar) -> None:
        self._grammar = grammar
        self._pending = bytearray()
        self._lock = threading.Lock()  # guards _pending, _closed, _busy
        self._closed = False  # discarded or finished: no more audio, decoder let go
        self._busy = False  # a worker is decoding a block

    def feed(self, pcm: bytes) -> None:
        with self._lock:
            if not self._closed:
                self._pending += pcm

    def advance(self) -> None:
        block = self._take(closing=False)
        if block is None:
            return
        try:
            self._process(block, final=False)
        finally:
            wipe(block)
            self._done_with_block()

    def finish(self) -> SecretDigits | None:
        """Decode what is left and conclude (blocking: call it from a worker thread)."""
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
            with self._lock:
                self._busy = False

    def discard(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            wipe(self._pending)
            busy = self._busy
        if not busy:
            self._abort()

    def _take(self, *, closing: bool) -> bytearray | None:
        """The queued audio (the queue starts afresh), or None once closed."""
        with self._lock:
            if self._closed:
                return None
            if self._busy:
                raise RuntimeError("one decoding step at a time per utterance")
            self._busy = True
            self._closed = closing
            block, self._pending = self._pending, bytearray()
        return block

    def _done_with_block(self) -> None:
        with self._lock:
            self._busy = False
            aborted = self._closed
        if aborted:  # discarded while this block was decoded
            self._abort()

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
