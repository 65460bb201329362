"""The outbox worker: takes entries of a StreamOutbox, tries them with a thread pool.

Shared by the callback worker (callbacks/worker.py) and the comment worker
(connectors/comments.py). Several workers (threads of one process, processes of one
host, hosts sharing Redis) run side by side: the consumer group and the leases in the
schedule (store/stream_outbox.py) make sure an entry is in one worker's hands at a
time. A worker killed at any point loses nothing: what it held comes back when its
lease (or, for entries it had read but not adopted, `claim_idle`) runs out.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar, cast

import redis

from payivr.callbacks.acks import AckBatcher
from payivr.callbacks.backoff import Backoff
from payivr.callbacks.metrics import Metrics
from payivr.store.stream_outbox import Leased, StreamOutbox, now_ms

log = logging.getLogger("payivr.callbacks")

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)
SUMMARY_EVERY_S = 60.0

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
    """Takes entries of one StreamOutbox and tries them with a thread pool until `stop()`;
    `run()` blocks the calling thread. Subclasses say what one attempt is (`attempt`)
    and what to note when an entry is done (`delivered_latency_s`)."""

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
        self._stop = threading.Event()
        self._free = settings.threads
        self._free_lock = threading.Condition()
        self._next_sweep = 0.0
        self._acks = AckBatcher(outbox, what=self.what + "s")
        # Entries being delivered: id -> the lease this worker holds (renewed while
        # the attempt lasts). Outcome writes and renewals take the lock, so an
        # outcome always presents the lease Redis currently has.
        self._leases: dict[str, int] = {}
        self._lease_lock = threading.Lock()

    def stop(self) -> None:
        self._stop.set()
        with self._free_lock:
            self._free_lock.notify_all()

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> None:
        """Take and deliver entries until stopped; survives Redis outages."""
        log.info(
            "%s worker %s starting (%d threads)", self.what, self.consumer, self.settings.threads
        )
        pool = ThreadPoolExecutor(self.settings.threads, thread_name_prefix=self.what)
        self._acks.start()
        pause = 0.1
        group_ready = False
        next_summary = time.monotonic() + SUMMARY_EVERY_S
        renew_every = max(self.settings.lease_ms / 3000, 0.05)
        next_renew = time.monotonic() + renew_every
        try:
            while not self._stop.is_set():
                try:
                    if not group_ready:
                        self.outbox.ensure_group()
                        group_ready = True
                    for entry in self._take():
                        self._acquire_slot()
                        with self._lease_lock:
                            self._leases[entry.id] = entry.lease_ms
                        pool.submit(self._deliver, entry)
                    pause = 0.1
                    if time.monotonic() >= next_renew:
                        next_renew = time.monotonic() + renew_every
                        self._renew_leases()
                    if time.monotonic() >= next_summary:
                        # One line a minute instead of one per delivery (thousands/s).
                        next_summary = time.monotonic() + SUMMARY_EVERY_S
                        log.info("%s worker %s: %s", self.what, self.consumer, self._summary())
                except REDIS_ERRORS as exc:
                    log.warning(
                        "redis unavailable (%s); retrying in %.1fs", type(exc).__name__, pause
                    )
                    self._stop.wait(pause)
                    pause = min(pause * 2, 5.0)
                except redis.ResponseError as exc:
                    if "NOGROUP" in str(exc):  # Redis came back without our data
                        group_ready = False
                        continue
                    log.error("redis error: %s", exc)
                    self._stop.wait(pause)
                    pause = min(pause * 2, 5.0)
        finally:
            pool.shutdown(wait=True)
            self._acks.close()
            log.info("%s worker %s stopped: %s", self.what, self.consumer, self._summary())

    def _renew_leases(self) -> None:
        """Extend the leases of the entries still being delivered (see RENEW)."""
        with self._lease_lock:
            if not self._leases:
                return
            deadline = now_ms() + self.settings.lease_ms
            held = dict(self._leases)
            renewed = self.outbox.renew(held, deadline)
            for entry_id in held:
                if entry_id in renewed:
                    self._leases[entry_id] = deadline
                else:
                    # Only if this process stalled longer than a lease: another
                    # worker may have taken the entry over; its outcome wins.
                    log.warning("lost the lease of %s outbox entry %s", self.what, entry_id)
                    self._leases.pop(entry_id, None)

    def _summary(self) -> str:
        m = self.metrics
        return f"{m.delivered} delivered, {m.retried} retried, {sum(m.dead.values())} dead"

    def _free_slots(self) -> int:
        """Wait for free delivery slots; under load, for a few at once, so that one
        round of Redis calls takes a batch of work rather than a single entry."""
        want = max(1, self.settings.threads // 4)
        deadline = time.monotonic() + 0.005
        with self._free_lock:
            while not self._stop.is_set():
                if self._free >= want:
                    break
                left = deadline - time.monotonic()
                if self._free > 0 and left <= 0:
                    break
                self._free_lock.wait(left if self._free > 0 else 0.5)
            return self._free

    def _acquire_slot(self) -> None:
        with self._free_lock:
            self._free -= 1

    def _release_slot(self) -> None:
        with self._free_lock:
            self._free += 1
            self._free_lock.notify_all()

    def _take(self) -> list[E]:
        """Up to the free slots' worth of work: due retries, orphans, new entries."""
        free = self._free_slots()
        if self._stop.is_set() or free == 0:
            return []
        lease = self.settings.lease_ms
        taken, next_due = self.outbox.claim_due_and_next(free, now_ms(), lease)
        if len(taken) < free and time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + max(self.settings.claim_idle_s / 2, 0.05)
            taken += self.outbox.reclaim_stale(
                self.consumer, int(self.settings.claim_idle_s * 1000), free - len(taken), lease
            )
        if len(taken) < free:
            block = 0  # work in hand: just look, do not wait
            if not taken:
                # Wait for new entries, but not past the next due retry or sweep.
                block = self.settings.block_ms
                if next_due is not None:
                    block = min(block, max(1, next_due - now_ms()))
                sweep_in = int((self._next_sweep - time.monotonic()) * 1000)
                block = min(block, max(1, sweep_in))
            taken += self.outbox.read_new(self.consumer, free - len(taken), block, lease)
        return taken

    # -- one entry ------------------------------------------------------------------
    def attempt(self, entry: E) -> DeliveryVerdict:
        """Try one entry once; never raises for what the remote end does."""
        raise NotImplementedError

    def describe(self, entry: E) -> str:
        """How logs name an entry (an id, never its content)."""
        return entry.id

    def delivered_latency_s(self, entry: E, now_ms: int) -> float | None:
        """Seconds from the entry's creation to its delivery (None: not meaningful)."""
        return None

    def _deliver(self, entry: E) -> None:
        try:
            outcome = self.attempt(entry)
            self._record(entry, outcome)
        except Exception:
            # Never let one entry kill a pool thread; the lease brings it back later.
            log.exception("%s %s: unexpected error", self.what, self.describe(entry))
        finally:
            with self._lease_lock:
                self._leases.pop(entry.id, None)
            self._release_slot()

    def _record(self, entry: E, outcome: DeliveryVerdict) -> None:
        now = now_ms()
        attempts = entry.attempts
        if outcome.kind == "delivered":
            with self._lease_lock:
                self._leases.pop(entry.id, None)  # renewals stop; the removal is unconditional
            self._acks.add(entry)
            self.metrics.observe_delivered(self.delivered_latency_s(entry, now))
            log.debug(
                "%s %s delivered (HTTP %s, attempt %d)",
                self.what,
                self.describe(entry),
                outcome.status,
                attempts + 1,
            )
            return
        if outcome.kind == "dead":
            self._park(entry, now, outcome, outcome.reason)
            return
        next_at = self.backoff.next_attempt_ms(attempts + 1, now, entry.window_start_ms)
        if next_at is not None and outcome.not_before_ms:
            next_at = max(next_at, outcome.not_before_ms)
        if next_at is None:
            self._park(entry, now, outcome, "retry-window-exhausted")
            return
        if self._under_current_lease(
            entry,
            lambda held: self.outbox.retry_later(held, next_at, now, outcome.status, outcome.error),
        ):
            self.metrics.observe_retried()
        log.info(
            "%s %s attempt %d failed (%s); next in %.1fs",
            self.what,
            self.describe(entry),
            attempts + 1,
            outcome.error or outcome.status,
            (next_at - now) / 1000,
        )

    def _park(self, entry: E, now: int, outcome: DeliveryVerdict, reason: str) -> None:
        if self._under_current_lease(
            entry,
            lambda held: self.outbox.park_dead(
                held, now, outcome.status, outcome.error, reason, attempted=outcome.attempted
            ),
        ):
            self.metrics.observe_dead(reason)
        log.warning("%s %s dead: %s (%s)", self.what, self.describe(entry), reason, outcome.error)

    def _under_current_lease(self, entry: E, op: Callable[[E], bool]) -> bool:
        """Run an outcome write with the lease this worker holds now (renewals may have
        moved it since the entry was taken); False if the lease was lost."""
        with self._lease_lock:
            lease = self._leases.pop(entry.id, None)
            if lease is None:
                return False
            held = cast(E, replace(cast(Any, entry), lease_ms=lease))
            return self._with_redis_retry(lambda: op(held))

    def _with_redis_retry(self, op: Callable[[], bool]) -> bool:
        """Record an outcome, riding out a short Redis blip; if Redis stays away the
        lease expires and the entry is attempted again (at-least-once)."""
        for delay in (0.0, 0.2, 0.5, 1.0, 2.0):
            if delay:
                time.sleep(delay)
            try:
                return op()
            except REDIS_ERRORS:
                continue
        log.warning("could not record a %s outcome: redis unavailable", self.what)
        return False
