"""Replay detection (SPEC section 3): a (merchant, Call-ID, signature) seen before
within the window is refused. The Redis adapter implements this protocol; the
in-memory guard serves `payivr simulate` and unit tests."""

from __future__ import annotations

import hashlib
import time
from typing import Protocol


def replay_key(merchant: str, call_id: str, signature: str) -> str:
    """Redis key for one signed request. Hashed: Call-IDs are long and caller-chosen."""
    digest = hashlib.sha256(f"{call_id}\n{signature}".encode()).hexdigest()[:40]
    return f"payivr:replay:{merchant}:{digest}"


class ReplayGuard(Protocol):
    def first_seen(self, key: str, ttl_s: int) -> bool:
        """Remember `key` for ttl_s seconds; False if it was already there."""
        ...


class MemoryReplayGuard:
    """A process-local replay guard (tests, simulate). Not shared between processes."""

    def __init__(self, clock: object = time.monotonic) -> None:
        self._seen: dict[str, float] = {}
        self._clock = clock

    def first_seen(self, key: str, ttl_s: int) -> bool:
        now = self._clock()  # type: ignore[operator]
        expiry = self._seen.get(key)
        if expiry is not None and expiry > now:
            return False
        self._seen[key] = now + ttl_s
        return True
