"""In-band DTMF as a phone sends it: the key's two sine tones, G.711 A-law coded.

For the caller pcaps (payivr.stack.rtp_pcap) of phones that send DTMF in the audio
as well as RFC 2833 events, and for decoding what such a call recorded or relayed.
The G.711 coders live here too (A-law, and u-law for the spoken-card pcaps).

Levels follow ITU-T Q.23/Q.24 practice for telephone sets: the low-group tone at
-8 dBm0 and the high-group tone 2 dB louder (-6 dBm0). 0 dBm0 is a sine 3.14 dB
below the A-law full-scale sine (G.711), whose peak decodes to 32256.
"""

from __future__ import annotations

import math

RATE = 8000
LOW_GROUP = (697, 770, 852, 941)
HIGH_GROUP = (1209, 1336, 1477, 1633)
KEYPAD = ("123A", "456B", "789C", "*0#D")
LOW_DBM0 = -8.0
HIGH_DBM0 = -6.0
_DBM0_PEAK = 32256 * 10 ** (-3.14 / 20)  # peak of a 0 dBm0 sine, 16-bit linear


def frequencies(key: str) -> tuple[int, int]:
    """(low, high) frequencies of a keypad key."""
    for row, keys in enumerate(KEYPAD):
        column = keys.find(key)
        if column >= 0 and len(key) == 1:
            return LOW_GROUP[row], HIGH_GROUP[column]
    raise ValueError(f"not a DTMF key: {key!r}")


def key_of(low: int, high: int) -> str:
    """The key whose tones are (low, high)."""
    return KEYPAD[LOW_GROUP.index(low)][HIGH_GROUP.index(high)]


def tone_samples(key: str, start: int, count: int) -> list[int]:
    """Samples `start` .. `start + count` of the key's tone (phase-continuous across
    calls, so a tone cut into 20 ms packets is one unbroken tone)."""
    low, high = frequencies(key)
    a_low = _DBM0_PEAK * 10 ** (LOW_DBM0 / 20)
    a_high = _DBM0_PEAK * 10 ** (HIGH_DBM0 / 20)
    return [
        round(
            a_low * math.sin(2 * math.pi * low * n / RATE)
            + a_high * math.sin(2 * math.pi * high * n / RATE)
        )
        for n in range(start, start + count)
    ]


def alaw_encode(sample: int) -> int:
    """One 16-bit linear sample to its G.711 A-law byte."""
    sign = 0x80 if sample >= 0 else 0x00
    magnitude = min(abs(sample) if sample >= 0 else -sample - 1, 32767) >> 3  # 13-bit
    if magnitude < 32:
        code = magnitude >> 1
    else:
        segment = magnitude.bit_length() - 5  # 1..7
        code = (segment << 4) | ((magnitude >> segment) & 0x0F)
    return (sign | code) ^ 0x55


def alaw_decode(byte: int) -> int:
    """One G.711 A-law byte to a 16-bit linear sample."""
    a = byte ^ 0x55
    t = (a & 0x0F) << 4
    segment = (a & 0x70) >> 4
    if segment == 0:
        t += 8
    else:
        t = (t + 0x108) << (segment - 1)
    return t if a & 0x80 else -t


ULAW_BIAS = 0x84


def ulaw_encode(sample: int) -> int:
    """One 16-bit linear sample to its G.711 u-law byte (on the 14-bit value, as the
    G.711 reference coder does)."""
    value = sample >> 2
    mask = 0x7F if value < 0 else 0xFF
    value = min(-value if value < 0 else value, 8159) + 33
    segment = max(0, value.bit_length() - 6)
    if segment > 7:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def ulaw_decode(byte: int) -> int:
    """One G.711 u-law byte to a 16-bit linear sample."""
    u = ~byte & 0xFF
    t = (((u & 0x0F) << 3) + ULAW_BIAS) << ((u >> 4) & 0x07)
    t -= ULAW_BIAS
    return -t if u & 0x80 else t
