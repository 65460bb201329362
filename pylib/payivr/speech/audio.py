"""L16 helpers: the call's 8 kHz samples as recognisers want them."""

from __future__ import annotations

import array
import sys

FRAME_MS = 20
RATE = 8000
FRAME_BYTES = RATE * FRAME_MS // 1000 * 2  # 320: one 20 ms frame of L16 mono 8 kHz


def _samples(pcm: bytes | bytearray) -> array.array[int]:
    samples = array.array("h", bytes(pcm[: len(pcm) // 2 * 2]))
    if sys.byteorder != "little":
        samples.byteswap()
    return samples


def upsample_16k(pcm: bytes | bytearray) -> bytes:
    """8 kHz L16 to 16 kHz by linear interpolation (pocketsphinx's model is 16 kHz;
    the band above 4 kHz stays empty, as on any phone line)."""
    samples = _samples(pcm)
    if not samples:
        return b""
    out = array.array("h", bytes(4 * len(samples)))
    out[0::2] = samples
    following = samples[1:] + samples[-1:]
    out[1::2] = array.array("h", ((a + b) >> 1 for a, b in zip(samples, following, strict=True)))
    if sys.byteorder != "little":
        out.byteswap()
    return out.tobytes()


def wipe(buffer: bytearray) -> None:
    """Zero an audio buffer in place (card audio never outlives its listen)."""
    buffer[:] = bytes(len(buffer))
    del buffer[:]
