"""A DTMF tone detector (Goertzel) for what a test receives: does audio carry digits?

Written for the agent-media tests (no shared detector existed on main then). Per
20 ms frame of 8 kHz samples: the power at the 8 DTMF frequencies; a frame holds a
digit when the strongest row and column tones stand well above the others of their
group and together carry most of the frame's energy. A digit counts when it holds
for two frames in a row (40 ms, the shortest tone ITU-T Q.24 asks receivers to
accept), so a speech formant crossing a DTMF frequency is not a digit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

RATE = 8000
FRAME = 160  # 20 ms
ROWS = (697.0, 770.0, 852.0, 941.0)
COLS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")
MIN_RMS = 100.0  # below this a frame is silence (16-bit samples)
MIN_SHARE = 0.6  # of the frame's energy in the two tones
MIN_DOMINANCE = 6.0  # strongest tone of a group over the second strongest


def power(samples: Sequence[int], freq: float, rate: int = RATE) -> float:
    """Goertzel power of `freq` in `samples`, normalised to the frame's energy scale."""
    coeff = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) * 2.0 / len(samples)


def frame_digit(samples: Sequence[int]) -> str | None:
    """The DTMF key this frame carries, or None."""
    energy = sum(x * x for x in samples)
    if not samples or math.sqrt(energy / len(samples)) < MIN_RMS:
        return None
    rows = sorted(((power(samples, f), i) for i, f in enumerate(ROWS)), reverse=True)
    cols = sorted(((power(samples, f), i) for i, f in enumerate(COLS)), reverse=True)
    (row_p, row), (row_p2, _) = rows[0], rows[1]
    (col_p, col), (col_p2, _) = cols[0], cols[1]
    if row_p < MIN_DOMINANCE * row_p2 or col_p < MIN_DOMINANCE * col_p2:
        return None
    # Goertzel power of a pure sine of amplitude A over the frame is about A^2 * N / 2;
    # the frame's energy holds A^2 * N / 2 per tone as well.
    if (row_p + col_p) < MIN_SHARE * energy:
        return None
    return KEYS[row][col]


def detect(samples: Sequence[int]) -> str:
    """The digits in `samples`, each once per tone (two frames in a row or more)."""
    digits: list[str] = []
    previous: str | None = None
    held = 0
    for start in range(0, len(samples) - FRAME + 1, FRAME):
        digit = frame_digit(samples[start : start + FRAME])
        held = held + 1 if digit is not None and digit == previous else 1
        if digit is not None and held == 2:
            digits.append(digit)
        previous = digit
    return "".join(digits)
