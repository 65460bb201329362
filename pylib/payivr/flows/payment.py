"""``pay`` in a flow: the capture plan, through the same executor, in the same call.

The payment is a payment session like a transferred one: created on Redis with
``session.created`` (as Kamailio does), captured by ``CapturePlan`` with the
payment's commands run by ``Executor(REGISTRY)`` on the same channel, its result
recorded with the outbox entry for the merchant's callback (one transaction), then
``call.returned`` (how ``flow``) and ``session.closed``. The flow gets the result's
code, reason and session id; nothing of the card leaves the capture plan.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any, Protocol

from payivr.core.config import MerchantConfig
from payivr.core.errors import Rejection
from payivr.core.flow.commands import StartPayment
from payivr.core.flow.events import PaymentDone
from payivr.core.plan import CapturePlan, Command, FieldReport, Play, ReturnCall
from payivr.core.processor import Processor, ProcessorAnswer
from payivr.core.prompts import PromptId
from payivr.core.reasons import Reason
from payivr.core.request import parse_request
from payivr.core.result import PaymentResult
from payivr.core.session import Event as SessionEvent
from payivr.core.session import Session, SessionState
from payivr.execution.context import CallContext, DriverHooks
from payivr.execution.executor import Executor as CommandExecutor
from payivr.execution.metrics import PaymentMetrics
from payivr.execution.registry import REGISTRY
from payivr.execution.store import CallStore
from payivr.flows.context import FlowContext
from payivr.store.async_store import AsyncSessionStore

log = logging.getLogger("payivr.flow")

# The caller stays in the flow: no goodbye and no return of the call.
FLOW_CONTINUES = frozenset({PromptId.GOODBYE.value, PromptId.TRANSFER_BACK.value})


class InFlowPayment(DriverHooks):
    """The payment's driver hooks inside a flow: the call is already answered, and
    it goes back to the flow instead of being returned. It counts in the process's
    payment metrics as a transferred payment does."""

    def __init__(self, metrics: PaymentMetrics) -> None:
        self.metrics = metrics

    def skips(self, command: Command) -> bool:
        return isinstance(command, ReturnCall) or (
            isinstance(command, Play) and command.prompt in FLOW_CONTINUES
        )

    def reported(self, report: FieldReport) -> None:
        self.metrics.field(report)

    def settled(self, answer: ProcessorAnswer, seconds: float) -> None:
        self.metrics.processor(answer, seconds)

    async def recorded(self, ctx: CallContext, result: PaymentResult) -> None:
        self.metrics.result(result)


class SessionCreator(Protocol):
    async def create_session(self, session: Session, merchant: MerchantConfig, ttl_s: int) -> None:
        """Store a new payment session with its `session.created` event and its
        watchdog deadline (payivr.store.admit_write)."""
        ...


@dataclasses.dataclass
class CapturePayments:
    """The flow's Payments port."""

    store: AsyncSessionStore
    sessions: SessionCreator
    merchants: Mapping[str, MerchantConfig]
    processor_for: Callable[[str], Processor]
    session_ttl_s: int = 3600
    pool: Executor | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # The process's payment metrics (the ESL application's): flow payments count
    # in the same series as transferred ones.
    metrics: PaymentMetrics = dataclasses.field(default_factory=PaymentMetrics)

    async def pay(self, ctx: FlowContext, command: StartPayment) -> PaymentDone:
        merchant = self.merchants.get(command.merchant)
        if merchant is None:  # the config check refuses such flows; a reload may not
            log.error("flow call %s: pay: merchant is not configured", ctx.label)
            return PaymentDone("failed", Reason.MERCHANT_UNKNOWN, "", ctx.telephone.hungup)
        call_id = ctx.plan.call.call_id or ctx.label
        try:
            request = parse_request(_fields(command, merchant), merchant, call_id=call_id)
        except Rejection as exc:
            # The flow computed a request the merchant's rules refuse (an amount
            # over the maximum...): a failed payment for the flow to handle.
            log.warning("flow call %s: pay refused: %s", ctx.label, exc.header)
            return PaymentDone("failed", "invalid-request", "", ctx.telephone.hungup)
        session = Session.new(request, self.clock())
        await self.sessions.create_session(session, merchant, self.session_ttl_s)
        log.info("flow call %s: pay: session %s order %s", ctx.label, session.id, request.order)
        payment = CallContext(
            label=ctx.label,
            plan=CapturePlan(request, merchant, self.clock().date()),
            session=session,
            merchant=merchant,
            telephone=ctx.telephone.payment_telephone(request.language),
            store=CallStore(self.store, ctx.label),
            processor=self.processor_for(merchant.id),
            processor_timeout_s=merchant.processor.timeout_s,
            hooks=InFlowPayment(self.metrics),
            pool=self.pool,
            clock=self.clock,
        )
        await CommandExecutor(REGISTRY).run(payment)
        store = payment.store
        store.later(self.store.set_state, payment.session, SessionState.RETURNED, self.clock(),
                    how="flow")  # fmt: skip
        store.later(self.store.append_event, SessionEvent.SESSION_CLOSED, payment.session,
                    self.clock())  # fmt: skip
        await store.drain()
        result = payment.result
        if result is None:  # the executor records one however the payment ends
            return PaymentDone("failed", Reason.INTERNAL_ERROR, session.id, ctx.telephone.hungup)
        ctx.payment, ctx.payment_merchant = result, merchant.id
        return PaymentDone(str(result.code), result.reason or "", session.id, ctx.telephone.hungup)


def _fields(command: StartPayment, merchant: MerchantConfig) -> dict[str, Any]:
    """The request as the X-Pay-* fields a CTI would send: validated the same way."""
    fields = {
        "x-pay-merchant": merchant.id,
        "x-pay-operation": command.operation,
        "x-pay-order": command.order,
        "x-pay-language": command.language,
        "x-pay-return": "hangup",
    }
    optional = {
        "x-pay-amount": command.amount,
        "x-pay-currency": command.currency,
        "x-pay-description": command.description,
        "x-pay-callback-url": command.callback_url,
    }
    fields.update({k: v for k, v in optional.items() if v})
    return fields
