"""Exponential backoff with jitter, and the end of the retry window."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delay before attempt n+1 after n failed attempts: base * 2^(n-1), capped, jittered.

    The jitter ("equal jitter": half fixed, half random) spreads the retries of many
    entries that failed together (an endpoint that was down) so that they do not hit
    the endpoint in one burst when it comes back.
    """

    base_ms: int = 1_000
    max_ms: int = 900_000
    retry_for_ms: int = 86_400_000

    def delay_ms(self, failed_attempts: int, rng: random.Random | None = None) -> int:
        """Milliseconds to wait after `failed_attempts` (>= 1) failures."""
        exp = min(max(failed_attempts - 1, 0), 40)
        ceiling = min(self.max_ms, self.base_ms * (2**exp))
        r = (rng or random).random()
        return int(ceiling / 2 + r * ceiling / 2)

    def next_attempt_ms(
        self,
        failed_attempts: int,
        now_ms: int,
        window_start_ms: int,
        rng: random.Random | None = None,
    ) -> int | None:
        """When to try again, or None when that would be past the retry window."""
        at = now_ms + self.delay_ms(failed_attempts, rng)
        if at > window_start_ms + self.retry_for_ms:
            return None
        return at
