"""The outbox worker: takes entries of a StreamOutbox in batches and tries them.

Shared by the callback worker (callbacks/worker.py) and the comment worker
(connectors/comments.py). The loop runs on asyncio: an `attempt` that is a coroutine
(the callbacks' HTTP client) runs as a task, `--concurrency` at once; a blocking one
(the comment connector) runs on a pool of `threads`. Redis calls are made by the
synchronous StreamOutbox on two helper threads (one that may block waiting for new
entries, one for outcomes, removals and lease renewals), one call per batch rather
than per entry.

Several workers (processes of one host, hosts sharing Redis) run side by side: the
consumer group and the leases in the schedule (store/stream_outbox.py) make sure an
entry is in one worker's hands at a time. A worker killed at any point loses nothing:
what it held comes back when its lease (or, for entries it had read but not adopted,
`claim_idle`) runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar, cast

import redis

from payivr.callbacks.backoff import Backoff
from payivr.callbacks.metrics import Metrics
from payivr.store.stream_outbox import Leased, StreamOutbox, now_ms

log = logging.getLogger("payivr.callbacks")

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)
SUMMARY_EVERY_S = 60.0
# Delivered entries removed per round trip, at most.
MAX_ACK_BATCH = 512
# Delays between tries of a Redis write that failed (then the lease decides).
REDIS_RETRY_DELAYS = (0.0, 0.2, 0.5, 1.0, 2.0)

T = TypeVar("T")
E = TypeVar("E", bound=Leased)


@dataclass(frozen=True)
class DeliveryVerdict:
    """What one attempt gave. `kind`: delivered | retry | dead."""

    kind: str
    status: str = ""  # HTTP status code as text, or "" when no response came
    error: str = ""  # short, safe description (never the body)
    reason: str = ""  # stable id for dead entries (host-not-allowed, ...)
    attempted: bool = True  # False: refused before anything went out
    not_before_ms: int = 0  # retry no earlier (a server's Retry-After)


@dataclass(frozen=True)
class WorkerSettings:
    """Tuning of one worker process; defaults are production's, tests shorten them."""

    consumer: str = ""
    # Deliveries in flight at once when an attempt is a coroutine (asyncio tasks).
    concurrency: int = 64
    # ... and when an attempt blocks (it runs on a pool of this many threads).
    threads: int = 16
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0
    retry_for_s: float = 86_400.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 900.0
    # How long an entry stays in a worker's hands before others may take it over.
    # Longer than one attempt can take (connect + read timeouts), with a margin.
    lease_s: float | None = None
    # Entries read from the group but never adopted (the reader died in between).
    claim_idle_s: float = 60.0
    block_ms: int = 1000

    @property
    def lease_ms(self) -> int:
        lease = self.lease_s
        if lease is None:
            lease = self.connect_timeout_s + 2 * self.read_timeout_s + 15.0
        return int(lease * 1000)

    def consumer_name(self) -> str:
        return self.consumer or f"{socket.gethostname()}-{os.getpid()}"

    def backoff(self) -> Backoff:
        return Backoff(
            base_ms=int(self.backoff_base_s * 1000),
            max_ms=int(self.backoff_max_s * 1000),
            retry_for_ms=int(self.retry_for_s * 1000),
        )


class OutboxWorker(Generic[E]):
    """Takes entries of one StreamOutbox and tries them until `stop()`; `run()` blocks
    the calling thread (it runs the event loop). Subclasses say what one attempt is
    (`attempt`, a coroutine or a blocking function) and what to note when an entry is
    done (`delivered_latency_s`)."""

    what = "entry"  # for logs: "callback", "comment"

    def __init__(
        self,
        outbox: StreamOutbox[E],
        settings: WorkerSettings,
        metrics: Metrics | None = None,
    ) -> None:
        self.outbox = outbox
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.consumer = settings.consumer_name()
        self.backoff = settings.backoff()
        self._asynchronous = inspect.iscoroutinefunction(self.attempt)
        self._limit = settings.concurrency if self._asynchronous else settings.threads
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_sweep = 0.0
        self._in_flight = 0
        # Entries being delivered: id -> the lease this worker holds (renewed while
        # the attempt lasts). Outcome writes and renewals hold the lock across their
        # Redis call, so an outcome always presents the lease Redis currently has.
        self._leases: dict[str, int] = {}
        # Answered 2xx, waiting for their removal (one round trip for all of them).
        self._delivered: list[E] = []

    def stop(self) -> None:
        """Finish the deliveries in hand and return from run(); any thread may call it."""
        self._stop.set()
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(self._wake_up)

    def _wake_up(self) -> None:
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> None:
        """Take and deliver entries until stopped; survives Redis outages."""
        log.info(
            "%s worker %s starting (%d in flight at most)", self.what, self.consumer, self._limit
        )
        self._reads = ThreadPoolExecutor(1, thread_name_prefix=f"{self.what}-redis-reads")
        self._writes = ThreadPoolExecutor(1, thread_name_prefix=f"{self.what}-redis-writes")
        self._blocking = ThreadPoolExecutor(self.settings.threads, thread_name_prefix=self.what)
        try:
            asyncio.run(self._main())
        finally:
            self._reads.shutdown(wait=True)
            self._writes.shutdown(wait=True)
            self._blocking.shutdown(wait=True)
            log.info("%s worker %s stopped: %s", self.what, self.consumer, self._summary())

    async def _redis(self, pool: ThreadPoolExecutor, op: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, op)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._acks_due = asyncio.Event()
        self._lease_lock = asyncio.Lock()
        if self._stop.is_set():
            return
        deliveries: set[asyncio.Task[None]] = set()
        acks = asyncio.create_task(self._remove_delivered())
        renewals = asyncio.create_task(self._renew_now_and_then())
        pause = 0.1
        group_ready = False
        next_summary = time.monotonic() + SUMMARY_EVERY_S
        try:
            while not self._stop.is_set():
                try:
                    if not group_ready:
                        await self._redis(self._reads, self.outbox.ensure_group)
                        group_ready = True
                    free = await self._free_slots()
                    if free == 0:
                        continue
                    taken = await self._redis(self._reads, functools.partial(self._take, free))
                    for entry in taken:
                        self._leases[entry.id] = entry.lease_ms
                        self._in_flight += 1
                        task = asyncio.create_task(self._deliver(entry))
                        deliveries.add(task)
                        task.add_done_callback(deliveries.discard)
                    pause = 0.1
                    self.tidy()
                    if time.monotonic() >= next_summary:
                        # One line a minute instead of one per delivery (thousands/s).
                        next_summary = time.monotonic() + SUMMARY_EVERY_S
                        log.info("%s worker %s: %s", self.what, self.consumer, self._summary())
                except REDIS_ERRORS as exc:
                    log.warning(
                        "redis unavailable (%s); retrying in %.1fs", type(exc).__name__, pause
                    )
                    await self._pause(pause)
                    pause = min(pause * 2, 5.0)
                except redis.ResponseError as exc:
                    if "NOGROUP" in str(exc):  # Redis came back without our data
                        group_ready = False
                        continue
                    log.error("redis error: %s", exc)
                    await self._pause(pause)
                    pause = min(pause * 2, 5.0)
        finally:
            if deliveries:
                await asyncio.gather(*deliveries, return_exceptions=True)
            renewals.cancel()
            self._acks_due.set()
            await asyncio.gather(acks, renewals, return_exceptions=True)
            self.close()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up at once on stop()."""
        self._wake.clear()
        if self._stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _renew_now_and_then(self) -> None:
        every = max(self.settings.lease_ms / 3000, 0.05)
        while True:
            await asyncio.sleep(every)
            try:
                await self._renew_leases()
            except redis.RedisError as exc:  # the next round tries again
                log.warning("could not renew leases (%s)", type(exc).__name__)

    async def _renew_leases(self) -> None:
        """Extend the leases of the entries still being delivered (see RENEW)."""
        async with self._lease_lock:
            if not self._leases:
                return
            deadline = now_ms() + self.settings.lease_ms
            held = dict(self._leases)
            renewed = await self._redis(
                self._writes, functools.partial(self.outbox.renew, held, deadline)
            )
            for entry_id in held:
                if entry_id not in self._leases:
                    continue  # answered 2xx meanwhile: being removed
                if entry_id in renewed:
                    self._leases[entry_id] = deadline
                else:
                    # Only if this process stalled longer than a lease: another
                    # worker may have taken the entry over; its outcome wins.
                    log.warning("lost the lease of %s outbox entry %s", self.what, entry_id)
                    self._leases.pop(entry_id, None)

    async def _remove_delivered(self) -> None:
        """Remove 2xx'd entries in batches: whatever queued up while the last removal
        was in flight goes in the next. If Redis stays away, they are sent again when
        their leases run out: at-least-once, never lost."""
        while True:
            await self._acks_due.wait()
            self._acks_due.clear()
            while self._delivered:
                batch = self._delivered[:MAX_ACK_BATCH]
                del self._delivered[:MAX_ACK_BATCH]
                if (
                    await self._redis_write(functools.partial(self.outbox.delivered, *batch))
                    is None
                ):
                    log.warning(
                        "could not remove %d delivered %ss (redis unavailable); "
                        "they will be sent again",
                        len(batch),
                        self.what,
                    )
            if self._stop.is_set() and self._in_flight == 0:
                return

    def _summary(self) -> str:
        m = self.metrics
        return f"{m.delivered} delivered, {m.retried} retried, {sum(m.dead.values())} dead"

    async def _free_slots(self) -> int:
        """Wait for free delivery slots; under load, for a few at once, so that one
        round of Redis calls takes a batch of work rather than a single entry."""
        concurrency = self._limit
        want = max(1, concurrency // 4)
        deadline = time.monotonic() + 0.005
        while not self._stop.is_set():
            free = concurrency - self._in_flight
            left = deadline - time.monotonic()
            if free >= want or (free > 0 and left <= 0):
                return free
            await self._pause(left if free > 0 else 0.5)
        return 0

    def _take(self, free: int) -> list[E]:
        """Up to `free` entries: due retries, new entries, orphans (a Redis thread)."""
        lease = self.settings.lease_ms
        taken, next_due = self.outbox.take(self.consumer, free, now_ms(), lease)
        if len(taken) < free and time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + max(self.settings.claim_idle_s / 2, 0.05)
            taken += self.outbox.reclaim_stale(
                self.consumer, int(self.settings.claim_idle_s * 1000), free - len(taken), lease
            )
        if taken or self._stop.is_set():
            return taken
        # Nothing to do: wait for new entries, but not past the next due retry or sweep.
        block = self.settings.block_ms
        if next_due is not None:
            block = min(block, max(1, next_due - now_ms()))
        sweep_in = int((self._next_sweep - time.monotonic()) * 1000)
        block = min(block, max(1, sweep_in))
        return self.outbox.read_new(self.consumer, free, block, lease)

    # -- one entry ------------------------------------------------------------------
    def attempt(self, entry: E) -> DeliveryVerdict | Awaitable[DeliveryVerdict]:
        """Try one entry once (a coroutine, or a blocking function run on a thread);
        never raises for what the remote end does."""
        raise NotImplementedError

    def describe(self, entry: E) -> str:
        """How logs name an entry (an id, never its content)."""
        return entry.id

    def delivered_latency_s(self, entry: E, now_ms: int) -> float | None:
        """Seconds from the entry's creation to its delivery (None: not meaningful)."""
        return None

    def tidy(self) -> None:
        """Called between batches (e.g. to close idle connections)."""

    def close(self) -> None:
        """Called once the loop has ended and the deliveries in hand are done."""

    async def _deliver(self, entry: E) -> None:
        try:
            if self._asynchronous:
                outcome = await cast(Awaitable[DeliveryVerdict], self.attempt(entry))
            else:
                loop = asyncio.get_running_loop()
                outcome = await loop.run_in_executor(
                    self._blocking, cast(Callable[[E], DeliveryVerdict], self.attempt), entry
                )
            await self._record(entry, outcome)
        except Exception:
            # One entry must not stop the others; the lease brings it back later.
            log.exception("%s %s: unexpected error", self.what, self.describe(entry))
        finally:
            self._leases.pop(entry.id, None)
            self._in_flight -= 1
            self._wake.set()
            if self._stop.is_set() and self._in_flight == 0:
                self._acks_due.set()

    async def _record(self, entry: E, outcome: DeliveryVerdict) -> None:
        now = now_ms()
        if outcome.kind == "delivered":
            self._leases.pop(entry.id, None)  # renewals stop; the removal is unconditional
            self._delivered.append(entry)
            self._acks_due.set()
            self.metrics.observe_delivered(self.delivered_latency_s(entry, now))
            return
        if outcome.kind == "dead":
            await self._park(entry, now, outcome, outcome.reason)
            return
        next_at = self.backoff.next_attempt_ms(entry.attempts + 1, now, entry.window_start_ms)
        if next_at is not None and outcome.not_before_ms:
            next_at = max(next_at, outcome.not_before_ms)
        if next_at is None:
            await self._park(entry, now, outcome, "retry-window-exhausted")
            return
        if await self._under_current_lease(
            entry,
            lambda held: self.outbox.retry_later(held, next_at, now, outcome.status, outcome.error),
        ):
            self.metrics.observe_retried()
        log.info(
            "%s %s attempt %d failed (%s); next in %.1fs",
            self.what,
            self.describe(entry),
            entry.attempts + 1,
            outcome.error or outcome.status,
            (next_at - now) / 1000,
        )

    async def _park(self, entry: E, now: int, outcome: DeliveryVerdict, reason: str) -> None:
        if await self._under_current_lease(
            entry,
            lambda held: self.outbox.park_dead(
                held, now, outcome.status, outcome.error, reason, attempted=outcome.attempted
            ),
        ):
            self.metrics.observe_dead(reason)
        log.warning("%s %s dead: %s (%s)", self.what, self.describe(entry), reason, outcome.error)

    async def _under_current_lease(self, entry: E, op: Callable[[E], bool]) -> bool:
        """Run an outcome write with the lease this worker holds now (renewals may have
        moved it since the entry was taken); False if the lease was lost."""
        async with self._lease_lock:
            lease = self._leases.pop(entry.id, None)
            if lease is None:
                return False
            held = cast(E, replace(cast(Any, entry), lease_ms=lease))
            done = await self._redis_write(lambda: op(held))
            if done is None:
                log.warning("could not record a %s outcome: redis unavailable", self.what)
            return bool(done)

    async def _redis_write(self, op: Callable[[], T]) -> T | None:
        """Run a Redis write, riding out a short Redis blip; None if Redis stays away
        (then the lease expires and the entry is attempted again: at-least-once)."""
        for delay in REDIS_RETRY_DELAYS:
            if delay:
                await asyncio.sleep(delay)
            try:
                return await self._redis(self._writes, op)
            except REDIS_ERRORS:
                continue
            except redis.RedisError as exc:  # not a blip: trying again would not help
                log.error("redis error: %s", exc)
                return None
        return None
