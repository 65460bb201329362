"""Many calls' Redis writes in few round trips: pipelines per loop turn, not per write.

With 1,000 calls in one process, the calls reach their steps together and each step's
write used to be its own round trip on its own pooled connection: the pool ran dry
(MaxConnectionsError), writes waited or failed, and the steps' tail grew to seconds
(docs/esl.md). Here every operation queued while the event loop runs its other
callbacks goes out at the next turn, in pipelines of at most `max_batch` operations.
The pipelines in flight grow with the queue, up to `max_in_flight`: a short queue
(the calls spread over time) is sent at once in one small pipeline and never waits
behind a large one, while a burst (the calls in lockstep) is cut into a bounded number
of round trips instead of one per write. Only when `max_in_flight` pipelines are out
do new operations wait, gathering into the next ones.

The operations a call waits for (`urgent`: the session load, the result) take the
first places of the next pipeline, ahead of the queued bookkeeping writes (events,
state changes made off the call's critical path), so a backlog of bookkeeping does
not delay them.

Each operation keeps its own replies and errors (``raise_on_error=False``); an
operation that must be atomic is wrapped in its own MULTI/EXEC inside the pipeline.
A pipeline that fails as a whole (connection lost, timeout) fails every operation in
it with that error, which the callers' retries (payivr.execution.store) handle: the
writes sent this way are idempotent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

Queue = Callable[[Any], None]  # queues one operation's commands on a pipeline
Operation = tuple[Queue, bool, "asyncio.Future[list[Any]]"]


class RedisBatcher:
    """Sends the operations queued during one event-loop turn in few pipelines."""

    def __init__(self, client: Any, *, max_batch: int = 64, max_in_flight: int = 16) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self.client = client
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._urgent: deque[Operation] = deque()
        self._bookkeeping: deque[Operation] = deque()
        self._in_flight = 0
        self._start_pending = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, queue: Queue, *, atomic: bool = False, urgent: bool = False) -> list[Any]:
        """Queue one operation; its replies, in order (an atomic one: EXEC's list).

        `urgent`: a call is waiting for it; it goes ahead of queued bookkeeping writes.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Any]] = loop.create_future()
        (self._urgent if urgent else self._bookkeeping).append((queue, atomic, done))
        self._schedule(loop)
        return await done

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # At the next turn, so that the operations queued by this turn's other
        # callbacks go in the same pipelines. A finishing pipeline calls this again.
        if not self._start_pending and self._in_flight < self.max_in_flight:
            self._start_pending = True
            loop.call_soon(self._start, loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._start_pending = False
        while (self._urgent or self._bookkeeping) and self._in_flight < self.max_in_flight:
            batch: list[Operation] = []
            for waiting in (self._urgent, self._bookkeeping):
                while waiting and len(batch) < self.max_batch:
                    batch.append(waiting.popleft())
            self._in_flight += 1
            task = loop.create_task(self._send(batch, loop))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[Operation], loop: asyncio.AbstractEventLoop) -> None:
        try:
            await self._execute(batch)
        finally:
            self._in_flight -= 1
            if self._urgent or self._bookkeeping:
                self._schedule(loop)

    async def _execute(self, batch: list[Operation]) -> None:
        pipe = self.client.pipeline(transaction=False)
        counts = []
        for queue, atomic, _ in batch:
            before = len(pipe.command_stack)
            if atomic:
                pipe.execute_command("MULTI")
            queue(pipe)
            if atomic:
                pipe.execute_command("EXEC")
            counts.append(len(pipe.command_stack) - before)
        try:
            replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            for _, _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        except BaseException:  # cancelled (the process stops): nobody is left waiting
            for _, _, done in batch:
                done.cancel()
            raise
        position = 0
        for (_, atomic, done), count in zip(batch, counts, strict=True):
            mine = replies[position : position + count]
            position += count
            if done.done():
                continue
            if atomic:
                # MULTI's OK, a QUEUED per command, then EXEC's list of replies.
                mine = mine[-1] if isinstance(mine[-1], list) else [mine[-1]]
            error = next((r for r in mine if isinstance(r, Exception)), None)
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(mine)
