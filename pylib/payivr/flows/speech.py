"""Dynamic text for flow calls: spoken offline by espeak-ng, cached by text.

``TtsCache.wav(text, language)`` returns a WAV FreeSWITCH plays: the same text in the
same language is synthesised once (``<dir>/<language>/<sha256>.wav``; concurrent
calls for it wait for the one synthesis). The text is never logged; the file name
is a hash. A flow's validator keeps secure variables out of spoken text.
"""

from __future__ import annotations

import asyncio
import hashlib
from concurrent.futures import Executor
from pathlib import Path

from payivr.prompts_build import DEFAULT_VOICES, SAMPLE_RATE, SPEED_WPM, synthesise_text


class TtsCache:
    def __init__(self, directory: Path, pool: Executor | None = None) -> None:
        self.directory = directory
        self.pool = pool
        self._pending: dict[Path, asyncio.Future[None]] = {}

    def path_for(self, text: str, language: str) -> Path:
        voice = DEFAULT_VOICES.get(language, language)
        key = "\0".join((voice, str(SPEED_WPM), str(SAMPLE_RATE), text))
        return self.directory / language / f"{hashlib.sha256(key.encode()).hexdigest()}.wav"

    async def wav(self, text: str, language: str) -> Path:
        target = self.path_for(text, language)
        if target.exists():
            return target
        pending = self._pending.get(target)
        if pending is None:
            target.parent.mkdir(parents=True, exist_ok=True)
            loop = asyncio.get_running_loop()
            pending = asyncio.ensure_future(
                loop.run_in_executor(self.pool, synthesise_text, text, language, target)
            )
            self._pending[target] = pending
            pending.add_done_callback(lambda _: self._pending.pop(target, None))
        await asyncio.shield(pending)
        return target
