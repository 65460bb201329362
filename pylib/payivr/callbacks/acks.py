"""Batched removal of delivered entries: one Redis round trip for many 2xx answers.

Under load, answers arrive faster than one-at-a-time round trips can remove them;
the batcher takes whatever has queued up while its previous call was in flight.
If Redis is away long enough that a batch cannot be written, those entries are sent
again when their leases run out: at-least-once, never lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import redis

from payivr.store.stream_outbox import Leased, StreamOutbox

log = logging.getLogger("payivr.callbacks")

_STOP = object()


class AckBatcher:
    """A thread that removes delivered entries from the outbox in batches."""

    def __init__(
        self, outbox: StreamOutbox[Any], max_batch: int = 256, what: str = "callbacks"
    ) -> None:
        self.outbox = outbox
        self.max_batch = max_batch
        self.what = what
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="callback-acks", daemon=True)

    def start(self) -> AckBatcher:
        self._thread.start()
        return self

    def add(self, entry: Leased) -> None:
        self._queue.put(entry)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            batch: list[Leased] = []
            if item is _STOP:
                stopping = True
            else:
                batch.append(item)  # type: ignore[arg-type]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                batch.append(more)  # type: ignore[arg-type]
            if batch:
                self._flush(batch)

    def _flush(self, batch: list[Leased]) -> None:
        for delay in (0.0, 0.2, 0.5, 1.0, 2.0):
            if delay:
                time.sleep(delay)
            try:
                self.outbox.delivered(*batch)
                return
            except (redis.ConnectionError, redis.TimeoutError):
                continue
        log.warning(
            "could not remove %d delivered %s (redis unavailable); they will be sent again",
            len(batch),
            self.what,
        )
