"""Speech input of card data (docs/dictation.md): modes, grammars, the recogniser port.

Pure: no audio library, no recogniser, no I/O. The adapters in ``payivr.speech``
implement :class:`Recogniser`; the capture plan only ever sees ``SpeechHeard``
(digits already in ``SecretDigits``) or ``SpeechUnclear``.

PCI: what a recogniser hears is turned into ``SecretDigits`` by :func:`words_to_digits`
at once; no hypothesis text is returned, stored or logged by anything here.
"""

from __future__ import annotations

import array
import enum
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from payivr.core.secrets import SecretDigits


class InputMode(enum.StrEnum):
    """How the caller gives card data (SPEC 2: ``X-Pay-Input``)."""

    DTMF = "dtmf"  # keypad only (the default)
    SPEECH = "speech"  # the prompts ask the caller to speak; a key press still wins
    ANY = "any"  # the prompts offer both; a key press still wins

    @property
    def listens(self) -> bool:
        return self is not InputMode.DTMF


INPUT_MODES: tuple[str, ...] = tuple(m.value for m in InputMode)

# The words a caller may say, per language, and the digit each stands for. The
# grammar of a listen is built from these only, so nothing else can be recognised.
DIGIT_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "zero": "0",
        "oh": "0",
        "one": "1",
        "two": "2",
        "three": "3",
        "four": "4",
        "five": "5",
        "six": "6",
        "seven": "7",
        "eight": "8",
        "nine": "9",
    },
    "es": {
        "cero": "0",
        "uno": "1",
        "dos": "2",
        "tres": "3",
        "cuatro": "4",
        "cinco": "5",
        "seis": "6",
        "siete": "7",
        "ocho": "8",
        "nueve": "9",
    },
    "pt": {
        "zero": "0",
        "um": "1",
        "dois": "2",
        "três": "3",
        "quatro": "4",
        "cinco": "5",
        "seis": "6",
        "sete": "7",
        "oito": "8",
        "nove": "9",
    },
    "nl": {
        "nul": "0",
        "een": "1",
        "één": "1",
        "twee": "2",
        "drie": "3",
        "vier": "4",
        "vijf": "5",
        "zes": "6",
        "zeven": "7",
        "acht": "8",
        "negen": "9",
    },
}
# A yes is reported as the key "1", a no as "2": the same answers as the keypad's.
YES_NO_WORDS: dict[str, dict[str, str]] = {
    "en": {"yes": "1", "no": "2"},
    "es": {"sí": "1", "si": "1", "no": "2"},
    "pt": {"sim": "1", "não": "2", "nao": "2"},
    "nl": {"ja": "1", "nee": "2"},
}
YES = "1"
NO = "2"


@dataclass(frozen=True)
class Grammar:
    """What one listen may recognise: exactly ``length`` digits, or yes / no."""

    language: str
    length: int  # digits expected; 0 means a yes/no answer

    @property
    def yes_no(self) -> bool:
        return self.length == 0

    @property
    def words(self) -> dict[str, str]:
        table = YES_NO_WORDS if self.yes_no else DIGIT_WORDS
        if self.language not in table:
            raise ValueError(f"no speech words for language {self.language!r}")
        return table[self.language]


def words_to_digits(words: Iterable[str], grammar: Grammar) -> SecretDigits | None:
    """The digits ``words`` stand for when they fit ``grammar`` exactly, else None.

    A yes/no answer comes back as ``"1"`` / ``"2"``. Unknown words or a wrong count
    give None (the plan says "sorry, I did not understand")."""
    table = grammar.words
    out = bytearray()
    for word in words:
        digit = table.get(word.lower())
        if digit is None:
            out[:] = b"\0" * len(out)
            return None
        out += digit.encode("ascii")
    wanted = 1 if grammar.yes_no else grammar.length
    try:
        if len(out) != wanted:
            return None
        return SecretDigits(out)
    finally:
        out[:] = b"\0" * len(out)


class Utterance(Protocol):
    """One listen: audio in, at most one result out. Never keeps what it heard.

    The listen feeds frames as they arrive and has the audio decoded while the
    caller speaks (``advance`` in a worker thread), so that at the end of speech
    only the rest of the search is left for ``finish``."""

    def feed(self, pcm: bytes) -> None:
        """Signed 16-bit little-endian mono 8 kHz samples (one or more 20 ms frames).
        Cheap: only queues the audio (called on the event loop)."""
        ...

    def advance(self) -> None:
        """Decode the audio queued so far and zero it. Blocking (CPU): the listen
        calls it in a worker thread, never two at once."""
        ...

    def finish(self) -> SecretDigits | None:
        """The digits heard (``Grammar``) or None; frees the decoder's audio.
        Blocking (CPU): the listen calls it in a worker thread."""
        ...

    def discard(self) -> None:
        """Zero the audio fed so far without decoding it (nothing was said, a key
        was pressed, the caller hung up). Safe while an ``advance`` runs."""
        ...


class Recogniser(Protocol):
    """A speech recogniser restricted to a grammar of digit (or yes/no) words."""

    def languages(self) -> frozenset[str]:
        """The languages this recogniser has a model for."""
        ...

    def utterance(self, grammar: Grammar) -> Utterance:
        """A fresh decoding of one utterance with ``grammar``."""
        ...


@dataclass(frozen=True)
class Endpointing:
    """When an utterance has started and ended, by frame energy (20 ms frames)."""

    threshold: int = 500  # mean absolute sample value above which a frame is voiced
    start_frames: int = 3  # voiced frames in a row that start speech
    end_silence_ms: int = 500  # silence after speech that ends it
    max_speech_ms: int = 8000  # bound per listen: longer speech is cut here


class Endpointer:
    """Tracks one listen's frames: speech started? ended? (pure, no audio kept)."""

    def __init__(self, config: Endpointing = Endpointing()) -> None:
        self.config = config
        self.started = False
        self.ended = False
        self._voiced_run = 0
        self._silence_ms = 0
        self._speech_ms = 0

    def push(self, frame: bytes) -> None:
        """One 20 ms L16 frame (320 bytes); anything shorter counts as silence."""
        if self.ended:
            return
        voiced = _mean_abs(frame) >= self.config.threshold
        if not self.started:
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run >= self.config.start_frames:
                self.started = True
                self._speech_ms = 20 * self._voiced_run
            return
        self._speech_ms += 20
        self._silence_ms = 0 if voiced else self._silence_ms + 20
        if (
            self._silence_ms >= self.config.end_silence_ms
            or self._speech_ms >= self.config.max_speech_ms
        ):
            self.ended = True


def _mean_abs(frame: bytes) -> int:
    samples = array.array("h", frame[: len(frame) // 2 * 2])
    if sys.byteorder != "little":
        samples.byteswap()
    if not samples:
        return 0
    return sum(abs(v) for v in samples) // len(samples)
