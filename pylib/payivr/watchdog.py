"""The watchdog: finalises sessions whose call ended with no result and no BYE.

A FreeSWITCH node that dies (or a host that loses power) takes its calls with it:
no BYE goes through Kamailio, the ESL application records nothing. Every admitted
session is on `payivr:inflight`, scored by the latest time its call could still be
running (payivr.core.orphan.WatchBudget; each write of the ESL application pushes it
on). A passed deadline means the call is gone: the watchdog records `failed` /
`ivr-unavailable` with the ESL application's own transaction (first writer wins,
outbox entry, `payment.result`), so the merchant's callback goes out.

A session that had reached `processing` may have been charged: the recording step
puts it on `payivr:reversals` (Kamailio's BYE path does the same), and the watchdog
asks the merchant's processor to reverse it by idempotency key (no card data
needed), writing the outcome on the session (`reversal`, `reversal_raw_code`).
A failed reversal is recorded as `reversal-failed`, not retried: like the ESL
application's own reversals, it is for an operator to follow up.

It runs as a thread of every `payivr callbacks work` process (no unit of its own).
Several at once are safe: each takes its batch with a lease (the entry's score moves
past the lease, so nobody else takes it meanwhile; a watchdog that dies leaves it for
the next one when the lease ends), and recording is first writer wins.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from payivr.core.config import Config
from payivr.core.plan.commands import ProcessPayment
from payivr.core.processor import Processor, ProcessorAnswer, ProcessorTimeout, ResultCode
from payivr.core.reasons import Reason
from payivr.core.session import Session
from payivr.processors import build_processor
from payivr.processors.outcome import RAW_TIMEOUT, failed
from payivr.store import keys
from payivr.store.orphans import OrphanFinaliser
from payivr.store.transactions import annotate_call

log = logging.getLogger("payivr.watchdog")

# KEYS: a sorted set scored by due time (s). ARGV: now, lease end, count.
# The due members, each re-scored to the lease's end: taken by this caller.
CLAIM_DUE_SCRIPT = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return due
"""


@dataclass(frozen=True)
class WatchdogSettings:
    interval_s: float = 5.0  # between sweeps
    batch: int = 100  # sessions taken per sweep and set
    lease_s: float = 120.0  # longer than one reversal can take


@dataclass
class SweepReport:
    """What one sweep did (session ids), for logs and tests."""

    finalised: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    reversals: dict[str, str] = field(default_factory=dict)  # session id -> status

    def __bool__(self) -> bool:
        return bool(self.finalised or self.already_done or self.expired or self.reversals)


class Watchdog:
    """Sweeps `payivr:inflight` and `payivr:reversals`; `run()` until stopped."""

    def __init__(
        self,
        client: Any,
        config: Config,
        settings: WatchdogSettings | None = None,
        processors: dict[str, Processor] | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.settings = settings or WatchdogSettings()
        self.finaliser = OrphanFinaliser(client, config.services.session_ttl_s)
        self._claim = client.register_script(CLAIM_DUE_SCRIPT)
        self._processors: dict[str, Processor] = dict(processors or {})
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Sweep every `interval_s` until stopped; survives Redis outages."""
        log.info("watchdog: sweeping every %.1fs", self.settings.interval_s)
        while not self._stop.is_set():
            try:
                report = self.sweep()
                if report:
                    log.info(
                        "watchdog: finalised %d, already done %d, expired %d, reversals %s",
                        len(report.finalised),
                        len(report.already_done),
                        len(report.expired),
                        report.reversals or "none",
                    )
            except redis.RedisError as exc:
                log.warning("watchdog: redis unavailable (%s)", type(exc).__name__)
            self._stop.wait(self.settings.interval_s)
        log.info("watchdog stopped")

    def sweep(self, now: float | None = None) -> SweepReport:
        """One pass: finalise the sessions past their deadline, then run the due
        reversals. Raises redis.RedisError when Redis is unreachable."""
        when = time.time() if now is None else now
        report = SweepReport()
        for session_id in self._take(keys.INFLIGHT, when):
            finalised = self.finaliser.finalise(session_id, datetime.fromtimestamp(when, UTC))
            if finalised is None:
                # Its TTL ran out before its deadline: nothing left to report.
                log.error("watchdog: session %s expired before it could be finalised", session_id)
                report.expired.append(session_id)
            elif finalised.by_us:
                log.warning("watchdog: session %s finalised as orphaned", session_id)
                report.finalised.append(session_id)
            else:
                report.already_done.append(session_id)
        for session_id in self._take(keys.REVERSALS, when):
            report.reversals[session_id] = self._reverse(session_id)
        return report

    def _take(self, zset: str, now: float) -> list[str]:
        lease_end = now + self.settings.lease_s
        taken = self._claim(keys=[zset], args=[repr(now), repr(lease_end), self.settings.batch])
        return [t.decode() if isinstance(t, bytes) else str(t) for t in taken]

    def _reverse(self, session_id: str) -> str:
        """Ask the processor to void what the session's order may have charged."""
        raw = self.client.hgetall(keys.session_key(session_id))
        merchant = None
        session = Session.from_hash(raw) if raw else None
        if session is not None:
            merchant = self.config.merchant(session.request.merchant)
        if session is None or merchant is None:
            log.error("watchdog: cannot reverse session %s: session or merchant gone", session_id)
            self.client.zrem(keys.REVERSALS, session_id)
            return "not-attempted"
        request = ProcessPayment(None, None).charge_request(
            session.request, timeout_s=merchant.processor.timeout_s
        )
        answer = self._ask_reverse(self._processor(merchant.id), request)
        status = "reversed" if answer.code is ResultCode.APPROVED else "reversal-failed"
        log.warning(
            "watchdog: reversal of orphaned session %s: %s (raw %s)",
            session_id,
            status,
            answer.raw_code,
        )
        call = annotate_call(
            session_id, {"reversal": status, "reversal_raw_code": answer.raw_code or ""}
        )
        if call is not None:
            self.client.eval(*call)
        self.client.zrem(keys.REVERSALS, session_id)
        return status

    def _processor(self, merchant_id: str) -> Processor:
        if merchant_id not in self._processors:
            merchant = self.config.merchants[merchant_id]
            self._processors[merchant_id] = build_processor(merchant)
        return self._processors[merchant_id]

    @staticmethod
    def _ask_reverse(processor: Processor, request: Any) -> ProcessorAnswer:
        try:
            return processor.reverse(request)
        except ProcessorTimeout:
            return failed(Reason.PROCESSOR_TIMEOUT, RAW_TIMEOUT)
        except Exception as exc:  # a reversal must never stop the watchdog
            log.error("watchdog: reversal error: %s", type(exc).__name__)
            return failed(Reason.PROCESSOR_ERROR, f"payivr:{type(exc).__name__}")


def start_watchdog(client: Any, config: Config, settings: WatchdogSettings) -> Watchdog:
    """A watchdog running in a daemon thread of this process (`stop()` ends it)."""
    dog = Watchdog(client, config, settings)
    threading.Thread(target=dog.run, name="watchdog", daemon=True).start()
    return dog
