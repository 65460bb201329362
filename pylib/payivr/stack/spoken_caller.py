"""A caller who says the card (docs/dictation.md): the answers laid out in time
against the IVR's prompts, for `payivr demo --input speech` and the real-engine test.

The caller says each chunk of the card number, "yes" after each read-back, the
expiry (and "yes"), the security code (and "yes"). An answer must start after the
IVR has finished the prompt before it (what is said during a prompt is dropped) and
within the listen's `field_timeout_ms` (15 s by default) after it. Each answer is
timed from the previous one, not from the start of the call, so nothing drifts:
after an answer the IVR waits for the end of speech (the endpointer's silence),
decodes it (DECODE_ALLOWANCE_S at most: a slower decoding is a miss the IVR would
re-prompt anyway), then plays the read-back or the next field's prompt. The answer
is placed just after the longest that can take; an IVR that was quicker is still
listening when it comes.
"""

from __future__ import annotations

import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from payivr.core.prompts import PromptId
from payivr.core.speech_input import Endpointing
from payivr.stack.rtp_pcap import Saying

# The listen's decoding deadline (payivr.speech.listener.listen, 3 s): the IVR never
# takes longer than this to answer what it heard.
DECODE_ALLOWANCE_S = 3.0
READBACK_GAP_S = 0.1  # the silence the telephone plays between read-back digits
# After the prompt is expected to end: before the first answer (its start is estimated
# from the greeting and the amount, whose `say` has no file to measure), and before
# each later one (stream set-up, scheduling on a loaded machine).
FIRST_MARGIN_S = 3.0
MARGIN_S = 0.8


@dataclass(frozen=True)
class SaidCard:
    """What the caller says, as L16 8 kHz audio: each chunk of the card number (four
    digits, the last may be shorter), the expiry, the code, and a "yes"."""

    chunks: Sequence[bytes]
    chunk_digits: Sequence[int]
    expiry: bytes
    cvv: bytes
    cvv_digits: int
    yes: bytes


@dataclass(frozen=True)
class _Answer:
    pcm: bytes
    prompt: PromptId  # what the IVR plays right before it listens for this
    read_back: int  # how many digits it reads back before that (0: none)


def _answers(card: SaidCard) -> list[_Answer]:
    answers: list[_Answer] = []
    said: list[tuple[bytes, int, PromptId]] = [
        (pcm, digits, PromptId.SAY_CARD_NUMBER if n == 0 else PromptId.SAY_NEXT_DIGITS)
        for n, (pcm, digits) in enumerate(zip(card.chunks, card.chunk_digits, strict=True))
    ]
    said += [(card.expiry, 4, PromptId.SAY_EXPIRY), (card.cvv, card.cvv_digits, PromptId.SAY_CVV)]
    for pcm, digits, prompt in said:
        answers.append(_Answer(pcm, prompt, 0))
        answers.append(_Answer(card.yes, PromptId.READBACK_CHOICE, digits))
    return answers


def wav_seconds(path: Path) -> float:
    """Length of a built prompt (0 if it is missing)."""
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / float(w.getframerate())
    except (OSError, wave.Error):
        return 0.0


def schedule(
    prompts_dir: Path, language: str, card: SaidCard, first_prompt_s: float
) -> list[Saying]:
    """When the caller says what. `first_prompt_s`: when the IVR starts the first
    listen's prompt (after the greeting and the amount), counted from the answer."""

    def seconds(prompt: PromptId) -> float:
        return wav_seconds(prompts_dir / language / f"{prompt.value}.wav")

    digits = prompts_dir / language / "digits"
    longest_digit = max(wav_seconds(digits / f"{d}.wav") for d in range(10))
    end_of_speech_s = Endpointing().end_silence_ms / 1000
    sayings: list[Saying] = []
    for answer in _answers(card):
        played = seconds(answer.prompt)
        if answer.read_back:
            played += seconds(PromptId.READBACK_INTRO)
            played += answer.read_back * (longest_digit + READBACK_GAP_S)
        if not sayings:
            start = first_prompt_s + played + FIRST_MARGIN_S
        else:
            last = sayings[-1]
            heard = last.start_s + last.seconds + end_of_speech_s + DECODE_ALLOWANCE_S
            start = heard + played + MARGIN_S
        sayings.append(Saying(round(start, 2), answer.pcm))
    return sayings
