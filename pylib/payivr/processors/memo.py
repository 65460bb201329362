"""In-process memory of answers by idempotency key, so a retry never charges twice.

A retried `charge` with a key already answered gets the first answer back without a
network call. Across processes the processor's own duplicate detection takes over
(Redsys refuses a repeated order id; the HTTP connector contract requires the
gateway to replay its first answer). Only answers are kept: never card data.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from payivr.core.processor import ProcessorAnswer


class AnswerMemo:
    """A bounded, thread-safe map idempotency key -> answer, entries expiring."""

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # None marks a key that was reversed: a late answer must not be remembered.
        self._entries: OrderedDict[str, tuple[float, ProcessorAnswer | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries
        self._ttl = ttl_s
        self._clock = clock

    def get(self, key: str) -> ProcessorAnswer | None:
        """The remembered answer for ``key``, if still fresh."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored_at, answer = entry
            if self._clock() - stored_at > self._ttl:
                del self._entries[key]
                return None
            return answer

    def put(self, key: str, answer: ProcessorAnswer) -> None:
        """Remember ``answer`` for ``key``, evicting the oldest entries past the bound.

        Ignored when ``key`` was reversed meanwhile (a charge answering after its
        reversal was sent must not be replayed as the key's answer).
        """
        with self._lock:
            self._store(key, answer, replace_tombstone=False)

    def forget(self, key: str) -> None:
        """Mark ``key`` reversed: its first answer no longer stands, none is kept."""
        with self._lock:
            self._store(key, None, replace_tombstone=True)

    def _store(self, key: str, answer: ProcessorAnswer | None, *, replace_tombstone: bool) -> None:
        entry = self._entries.get(key)
        now = self._clock()
        fresh_tombstone = entry is not None and entry[1] is None and now - entry[0] <= self._ttl
        if fresh_tombstone and not replace_tombstone:
            return
        self._entries[key] = (now, answer)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
