"""The processor call: a worker thread, the merchant's timeout, a caller who hangs up.

One implementation for every driver (ESL call, agent mode, simulate): the
``ProcessPayment`` handler calls ``settle_with_timeout``. Processors are synchronous
(payivr.core.processor); the call runs in a thread pool (the ESL application's own,
sized for 500 calls; the loop's default one elsewhere) so calls waiting on processors
never block the event loop. The whole
settlement runs in that thread (`payivr.processors.charge_and_settle`): a timeout or
an untrustworthy answer becomes `failed` and is followed at once by a reversal, whose
outcome the driver records with the result (`Settlement.session_fields()`).

The merchant's timeout is enforced here as well: an adapter that ignores
`ChargeRequest.timeout_s` is given up on after the charge's and the reversal's
budgets; the answer is then `failed`/`processor-timeout`, the session says
`reversal: pending`, and `Settlement.late` finishes in the background with the real
reversal's outcome (the late request may still charge, so it is voided too).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any, Protocol

from payivr.core import orphan
from payivr.core.processor import ChargeRequest, Processor, ProcessorAnswer, ResultCode
from payivr.core.reasons import Reason
from payivr.processors.outcome import (
    RAW_ADAPTER_ERROR,
    RAW_TIMEOUT,
    SettledCharge,
    charge_and_settle,
    failed,
)

log = logging.getLogger("payivr.call")

# Extra time past the merchant's timeouts (charge, then reversal) before payivr stops
# waiting for an adapter that failed to honour ChargeRequest.timeout_s itself.
PROCESSOR_GRACE_S = orphan.PROCESSOR_GRACE_S
REVERSAL_PENDING = "pending"


@dataclass(frozen=True)
class Settlement:
    """What the processor call came to.

    `outcome.answer` is what the caller hears; `late` is set only when payivr gave up
    waiting: it resolves to the session fields of the reversal done afterwards.
    """

    outcome: SettledCharge
    late: asyncio.Future[dict[str, str]] | None = None

    @property
    def answer(self) -> ProcessorAnswer:
        return self.outcome.answer

    def session_fields(self) -> dict[str, str]:
        """For the session hash, in the result's transaction (no card data)."""
        fields = self.outcome.session_fields()
        if self.late is not None:
            fields["reversal"] = REVERSAL_PENDING
        return fields


class HangupWatch(Protocol):
    """The call the processor works for: its name in logs, and its hang-up."""

    @property
    def uuid(self) -> str: ...

    @property
    def hungup(self) -> bool: ...


def settle_budget_s(charge: ChargeRequest) -> float:
    """How long the charge and its possible reversal may take, each on its timeout."""
    return orphan.settle_budget_s(charge.timeout_s, PROCESSOR_GRACE_S)


async def settle_with_timeout(
    processor: Processor,
    charge: ChargeRequest,
    pool: Executor | None,
    channel: HangupWatch,
    on_hangup: Callable[[], object],
) -> Settlement:
    """The settled outcome of the charge (never `approved` unless the processor said so).

    A caller hanging up meanwhile triggers `on_hangup` (the plan hears of it) and the
    outcome is still awaited: money may move, so the truth is recorded.
    """
    loop = asyncio.get_running_loop()
    work = loop.run_in_executor(pool, _settle_in_thread, processor, charge)
    hangup = asyncio.ensure_future(wait_for_hangup(channel))
    deadline = loop.time() + settle_budget_s(charge)
    try:
        waiting: set[asyncio.Future[Any]] = {work, hangup}
        done, _ = await asyncio.wait(
            waiting, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
        )
        if work not in done and hangup in done:
            on_hangup()
            await asyncio.wait({work}, timeout=max(0.0, deadline - loop.time()))
        if work.done():
            return Settlement(work.result())
    finally:
        hangup.cancel()
    log.warning("call %s: processor gave no answer in %.1fs", channel.uuid, charge.timeout_s)
    late = asyncio.ensure_future(_void_late(work, processor, charge, pool))
    return Settlement(SettledCharge(failed(Reason.PROCESSOR_TIMEOUT, RAW_TIMEOUT)), late)


def _settle_in_thread(processor: Processor, charge: ChargeRequest) -> SettledCharge:
    try:
        return charge_and_settle(processor, charge)
    except Exception as exc:  # charge_and_settle catches the adapters'; this is a bug
        log.error("processor settlement error: %s", type(exc).__name__)
        return SettledCharge(failed(Reason.PROCESSOR_ERROR, RAW_ADAPTER_ERROR))


async def _void_late(
    work: asyncio.Future[SettledCharge],
    processor: Processor,
    charge: ChargeRequest,
    pool: Executor | None,
) -> dict[str, str]:
    """After giving up on an adapter: whatever it finally did is voided and recorded.

    The caller was told `failed`, so a late approval must be reversed; a settlement
    that already reversed is taken as it is. Bounded: an adapter that never returns
    is reversed anyway, by idempotency key, without card data.
    """
    fields = {"processor_raw_code": RAW_TIMEOUT}
    try:
        outcome = await asyncio.wait_for(asyncio.shield(work), settle_budget_s(charge))
    except TimeoutError:
        outcome = None
    except asyncio.CancelledError:
        if not work.cancelled():
            raise  # this task itself is being cancelled
        outcome = None  # the pool shut down under the charge
    if outcome is not None and outcome.reversal is not None:
        return {**outcome.session_fields(), **fields}
    if outcome is not None and outcome.answer.code is not ResultCode.APPROVED:
        return {**fields, "reversal": "not-needed"}  # it refused: nothing to void
    loop = asyncio.get_running_loop()
    try:
        reversal = await loop.run_in_executor(
            pool, _reverse_in_thread, processor, replace(charge, card=None, cvv=None)
        )
    except RuntimeError:  # the pool was shut down (the service is stopping)
        reversal = failed(Reason.PROCESSOR_ERROR, "payivr:shutdown")
    status = "reversed" if reversal.code is ResultCode.APPROVED else "reversal-failed"
    log.warning("late reversal %s: order=%s raw=%s", status, charge.order, reversal.raw_code)
    return {**fields, "reversal": status, "reversal_raw_code": reversal.raw_code or ""}


def _reverse_in_thread(processor: Processor, charge: ChargeRequest) -> ProcessorAnswer:
    try:
        return processor.reverse(charge)
    except Exception as exc:
        log.error("reversal after timeout failed: %s", type(exc).__name__)
        return failed(Reason.PROCESSOR_ERROR, f"payivr:{type(exc).__name__}")


async def wait_for_hangup(channel: HangupWatch) -> None:
    """Until the call hangs up: its own `wait_hangup()` where it has one, else polled."""
    wait = getattr(channel, "wait_hangup", None)
    if wait is not None:
        await wait()
        return
    while not channel.hungup:
        await asyncio.sleep(0.2)
