"""Many calls' Redis writes in one round trip: a pipeline per loop turn, not per write.

With 1,000 calls in one process, the calls reach their steps together and each step's
write used to be its own round trip on its own pooled connection: the pool ran dry
(MaxConnectionsError), writes waited or failed, and the steps' tail grew to seconds
(docs/esl.md). Here every write queued while the event loop runs its other callbacks
goes out in one pipeline; while `max_in_flight` pipelines are out, new writes gather
into the next one. So the round trips per second stay bounded whatever the number of
calls, and a burst only makes the next pipeline longer.

Each operation keeps its own replies and errors (``raise_on_error=False``); an
operation that must be atomic is wrapped in its own MULTI/EXEC inside the pipeline.
A pipeline that fails as a whole (connection lost, timeout) fails every operation in
it with that error, which the callers' retries (payivr.execution.store) handle: the
writes sent this way are idempotent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

Queue = Callable[[Any], None]  # queues one operation's commands on a pipeline


class RedisBatcher:
    """Sends the operations queued during one event-loop turn as one pipeline."""

    def __init__(self, client: Any, *, max_in_flight: int = 4) -> None:
        self.client = client
        self._waiting: list[tuple[Queue, bool, asyncio.Future[list[Any]]]] = []
        self._slots = asyncio.Semaphore(max_in_flight)
        self._flush_pending = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, queue: Queue, *, atomic: bool = False) -> list[Any]:
        """Queue one operation; its replies, in order (an atomic one: EXEC's list)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Any]] = loop.create_future()
        self._waiting.append((queue, atomic, done))
        if not self._flush_pending:
            self._flush_pending = True
            task = loop.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await done

    async def _flush(self) -> None:
        async with self._slots:
            # Everything queued until a slot was free goes in this pipeline.
            self._flush_pending = False
            batch, self._waiting = self._waiting, []
            if not batch:
                return
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
