"""ReplayGuard (payivr.core.replay) on Redis: one SET NX EX per signed request.

Shared by every process that admits requests (Kamailio's workers, `payivr simulate`
against a real Redis). Kamailio itself claims the key inside its one-round-trip
admission script (payivr.kamailio.admission_store), atomically with the session; this
guard is for callers that admit without creating a session in the same step.
"""

from __future__ import annotations

from typing import Any


class RedisReplayGuard:
    """`first_seen(key, ttl)`: True the first time a key is claimed within its TTL."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def first_seen(self, key: str, ttl_s: int) -> bool:
        """Claim `key` for ttl_s seconds; False if someone claimed it before.

        Raises redis.RedisError if Redis cannot answer: a caller must refuse the request
        then (503), never treat "unknown" as "first seen".
        """
        return bool(self._client.set(key, "1", nx=True, ex=max(1, int(ttl_s))))
