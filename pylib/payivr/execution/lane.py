"""The call's media lane: media commands play one after the other, in a task of
their own, while the executor goes on (a processor call, the result's write).

A failure on the lane (``CallerGone`` above all) stops it and drops what was queued;
the executor hears of it at its next ``idle()``. Media is not played on a call that
has hung up: it is dropped unheard, as nobody would hear it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping
from typing import Any

from payivr.execution.context import Run
from payivr.execution.handler import Handler
from payivr.execution.registry import handler_for


class MediaLane:
    def __init__(self, ctx: Run, registry: Mapping[type, Handler]) -> None:
        self.ctx = ctx
        self.registry = registry
        self._queue: deque[Any] = deque()
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    def put(self, command: Any) -> None:
        """Queue a media command; it plays after everything queued before it."""
        if self._error is not None:
            return  # the lane has stopped; idle() reports why
        self._queue.append(command)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._play())

    async def idle(self) -> None:
        """Wait until everything queued has played; raise what stopped the lane."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def clear(self) -> None:
        """Drop what has not started (the caller hung up: nobody would hear it)."""
        self._queue.clear()

    async def cancel(self) -> None:
        """Stop at once (the run failed); nothing queued is played."""
        self._queue.clear()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        self._error = None

    async def _play(self) -> None:
        while self._queue:
            command = self._queue.popleft()
            if self.ctx.telephone.hungup:
                self._queue.clear()
                return
            try:
                self.ctx.hooks.started(command)
                await handler_for(self.registry, command).run(command, self.ctx)
            except Exception as exc:
                self._queue.clear()
                self._error = exc
                return
