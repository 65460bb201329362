"""A Goertzel DTMF detector for recordings and RTP audio (8 kHz, 16-bit linear).

Deliberately more sensitive than a telephone exchange's receiver (ITU-T Q.24 asks
for 40 ms of tone): one 20 ms packet of a key's tone, the length of the tail a
recording unmasked a frame early keeps, is found. Windows of 20 ms slide by 5 ms;
a window holds a key when the best low-group and best high-group tones are both
loud enough, carry most of the window's energy together, stand clear of the other
tones of their group, and are within the twist a telephone set may have.
"""

from __future__ import annotations

import math
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from payivr.stack.dtmf_tones import HIGH_GROUP, LOW_GROUP, RATE, alaw_decode, key_of

WINDOW = 160  # 20 ms: one RTP packet
HOP = 40  # 5 ms
# Each tone at least -30 dBm0 (a sine of peak ~723 in 16-bit linear); a set sends
# them at -6..-9 dBm0.
MIN_TONE_POWER = 723.0**2 / 2
MIN_SHARE = 0.6  # of the window's energy, in the two tones together
GROUP_MARGIN = 4.0  # the best tone over the second best of its group (6 dB)
MAX_TWIST = 10 ** (10 / 10)  # 10 dB between the two tones, either way

_COEFFS = {f: 2 * math.cos(2 * math.pi * f / RATE) for f in (*LOW_GROUP, *HIGH_GROUP)}


@dataclass(frozen=True)
class ToneRun:
    """One key heard without a break, from `start_s` to `end_s` (window edges)."""

    key: str
    start_s: float
    end_s: float


def tone_power(window: Sequence[int], frequency: int) -> float:
    """Mean power (per sample) the window has at `frequency` (Goertzel): a sine of
    peak A at that frequency filling the window gives A**2 / 2."""
    coeff = _COEFFS[frequency]
    s1 = s2 = 0.0
    for x in window:
        s1, s2 = x + coeff * s1 - s2, s1
    return 2 * (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (len(window) ** 2)


def window_key(window: Sequence[int]) -> str | None:
    """The key whose tones fill this window, if any."""
    power = sum(x * x for x in window) / len(window)
    if power < 2 * MIN_TONE_POWER:
        return None
    low = sorted(((tone_power(window, f), f) for f in LOW_GROUP), reverse=True)
    high = sorted(((tone_power(window, f), f) for f in HIGH_GROUP), reverse=True)
    (p_low, f_low), (p_high, f_high) = low[0], high[0]
    if min(p_low, p_high) < MIN_TONE_POWER:
        return None
    if (p_low + p_high) < MIN_SHARE * power:
        return None
    if p_low < GROUP_MARGIN * low[1][0] or p_high < GROUP_MARGIN * high[1][0]:
        return None
    if max(p_low, p_high) > MAX_TWIST * min(p_low, p_high):
        return None
    return key_of(f_low, f_high)


def detect(samples: Sequence[int], rate: int = RATE) -> list[ToneRun]:
    """Every run of DTMF tone in `samples`, in order."""
    if rate != RATE:
        raise ValueError(f"8 kHz audio only, not {rate} Hz")
    runs: list[ToneRun] = []
    current: str | None = None
    start = last = 0
    for at in range(0, max(0, len(samples) - WINDOW) + 1, HOP):
        key = window_key(samples[at : at + WINDOW])
        if key is not None and key == current:
            last = at
            continue
        if current is not None:
            runs.append(ToneRun(current, start / rate, (last + WINDOW) / rate))
        current, start, last = key, at, at
    if current is not None:
        runs.append(ToneRun(current, start / rate, (last + WINDOW) / rate))
    return runs


def keys(runs: Sequence[ToneRun]) -> str:
    return "".join(run.key for run in runs)


def wav_samples(path: Path) -> list[int]:
    """A mono 16-bit 8 kHz WAV's samples."""
    with wave.open(str(path), "rb") as w:
        if (w.getsampwidth(), w.getnchannels(), w.getframerate()) != (2, 1, RATE):
            raise ValueError(f"{path}: not mono 16-bit 8 kHz")
        frames = w.readframes(w.getnframes())
    return [
        int.from_bytes(frames[i : i + 2], "little", signed=True) for i in range(0, len(frames), 2)
    ]


def alaw_samples(payloads: Sequence[bytes]) -> list[int]:
    """G.711 A-law RTP payloads, in order, as one run of linear samples."""
    return [alaw_decode(b) for payload in payloads for b in payload]
