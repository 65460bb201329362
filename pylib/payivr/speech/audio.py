"""L16 helpers: the call's 8 kHz samples as recognisers want them."""

from __future__ import annotations

import array
import sys

FRAME_MS = 20
RATE = 8000
FRAME_BYTES = RATE * FRAME_MS // 1000 * 2  # 320: one 20 ms frame of L16 mono 8 kHz


def upsample_16k(pcm: bytearray, previous: int = 0) -> array.array[int]:
    """8 kHz L16 to 16 kHz by linear interpolation (pocketsphinx's model is 16 kHz).

    Each output pair is (the midpoint between the previous sample and this one,
    this sample), so consecutive blocks join without a seam when ``previous`` is
    the last sample of the block before. Linear interpolation leaves a mirror image
    of the phone band above 4 kHz; a clean band-limited upsampler that leaves that
    band empty was measured worse with the wideband model (docs/dictation.md).

    Returns a zeroable array (wipe it when the decoder has read it); ``pcm`` is
    not changed."""
    size = len(pcm) // 2 * 2
    view = memoryview(pcm)
    # Views, not slices: a slice of the caller's audio would be a copy nobody zeroes.
    samples = array.array("h")
    samples.frombytes(view[:size])
    before = array.array("h")
    before.frombytes(view[: max(0, size - 2)])
    view.release()
    if sys.byteorder != "little":
        samples.byteswap()
        before.byteswap()
    before.insert(0, previous)
    out = array.array("h", bytes(4 * len(samples)))
    if samples:
        middle = array.array("h", ((a + b) >> 1 for a, b in zip(before, samples, strict=True)))
        out[0::2] = middle
        out[1::2] = samples
        wipe_samples(middle)
    wipe_samples(before)
    wipe_samples(samples)
    if sys.byteorder != "little":
        out.byteswap()
    return out


def wipe(buffer: bytearray) -> None:
    """Zero an audio buffer in place (card audio never outlives its listen)."""
    buffer[:] = bytes(len(buffer))
    del buffer[:]


def wipe_samples(samples: array.array[int]) -> None:
    """Zero an array of samples in place, then empty it."""
    memoryview(samples).cast("B")[:] = bytes(len(samples) * samples.itemsize)
    del samples[:]
