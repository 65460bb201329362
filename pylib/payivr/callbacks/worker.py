"""The callback worker: delivers result callbacks from the callback outbox.

The loop (consumer group, leases, retries, dead entries, batches, asyncio) is the
generic outbox worker's (callbacks/outbox_worker.py); this file says what one delivery
is: a signed POST to the merchant's URL, checked against its policy (sender.py), as a
coroutine on the worker's event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from payivr.callbacks.metrics import Metrics
from payivr.callbacks.outbox_worker import DeliveryVerdict, OutboxWorker, WorkerSettings
from payivr.callbacks.policy import CallbackPolicy
from payivr.callbacks.sender import Sender
from payivr.store.outbox import LeasedEntry, Outbox

__all__ = ["Worker", "WorkerSettings"]


class Worker(OutboxWorker[LeasedEntry]):
    """Delivers result callbacks (signed POSTs); runs until `stop()`."""

    what = "callback"

    def __init__(
        self,
        outbox: Outbox,
        policies: Mapping[str, CallbackPolicy] | Callable[[str], CallbackPolicy | None],
        settings: WorkerSettings,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(outbox, settings, metrics)
        self._policy = policies if callable(policies) else policies.get
        self.sender = Sender(settings.connect_timeout_s, settings.read_timeout_s)

    async def attempt(self, entry: LeasedEntry) -> DeliveryVerdict:
        return await self.sender.send(entry, self._policy(entry.merchant))

    def tidy(self) -> None:
        self.sender.client.close_idle()

    def close(self) -> None:
        self.sender.client.close()

    def describe(self, entry: LeasedEntry) -> str:
        return entry.event_id

    def delivered_latency_s(self, entry: LeasedEntry, now_ms: int) -> float | None:
        # A replayed entry's age says nothing about the delivery path's latency.
        if entry.window_start_ms != entry.result_at_ms:
            return None
        return max(now_ms - entry.result_at_ms, 0) / 1000.0
