"""Ordered, non-blocking publication of progress events (and other small writes).

Key notices arrive from the ESL reader's callback (synchronous), field verdicts from
the payment's task: both `put()` here, and one task writes them to Redis in the order
they happened, so the panel never sees "entering 5" after "valid".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any

from payivr.agent.bus import AgentBus
from payivr.core.progress import ProgressEvent

log = logging.getLogger("payivr.agent")


class Publisher:
    def __init__(self, bus: AgentBus, call: str) -> None:
        self.bus = bus
        self.call = call
        self._queue: asyncio.Queue[ProgressEvent | Awaitable[Any] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"agent-publisher-{self.call}")

    def put(self, event: ProgressEvent) -> None:
        self._queue.put_nowait(event)

    def later(self, write: Awaitable[Any]) -> None:
        """Run a store write in order with the events (e.g. a field.completed event)."""
        self._queue.put_nowait(write)

    async def drain(self) -> None:
        """Wait until everything put so far is written."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def mark() -> None:
            done.set_result(None)

        self._queue.put_nowait(mark())
        await done

    async def close(self) -> None:
        if self._task is None:
            return
        self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), 5)
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            try:
                if isinstance(item, ProgressEvent):
                    await self.bus.publish(self.call, item)
                else:
                    await item
            except Exception as exc:  # progress is best effort; the payment goes on
                log.warning("call %s: progress write failed: %s", self.call, type(exc).__name__)
