"""A decoding pool for the speech tests: the ESL application's, one or two workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

from payivr.core.config_types import SpeechConfig
from payivr.speech.pool import DecodingPool, PooledUtterance

FRAME = 320


@contextmanager
def decoding_pool(processes: int = 1, **options: float) -> Iterator[DecodingPool]:
    pool = DecodingPool(SpeechConfig(decode_processes=processes), **options)
    try:
        yield pool
    finally:
        pool.close()


def keep_utterances(pool: DecodingPool) -> list[PooledUtterance]:
    """Every utterance the pool opens from now on, for the test to look at."""
    kept: list[PooledUtterance] = []
    original = pool.utterance

    def keep(grammar):  # type: ignore[no-untyped-def]
        kept.append(original(grammar))
        return kept[-1]

    pool.utterance = keep  # type: ignore[method-assign]
    return kept


async def paced(*parts: bytes) -> AsyncIterator[bytes]:
    """Frames at a call's pace (20 ms each), so decoding can keep up with them."""
    audio = b"".join(parts)
    for i in range(0, len(audio), FRAME):
        await asyncio.sleep(0.02)
        yield audio[i : i + FRAME].ljust(FRAME, b"\0")
