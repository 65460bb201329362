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
        self._entries: OrderedDict[str, tuple[float, ProcessorAnswer]] = OrderedDict()
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
        """Remember ``answer`` for ``key``, evicting the oldest entries past the bound."""
        with self._lock:
            self._entries[key] = (self._clock(), answer)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def forget(self, key: str) -> None:
        """Drop ``key`` (after a reversal, the first answer no longer stands)."""
        with self._lock:
            self._entries.pop(key, None)
