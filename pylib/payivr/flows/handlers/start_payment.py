"""StartPayment: the capture plan takes the payment, run by the same executor."""

from __future__ import annotations

from payivr.core.flow.commands import StartPayment
from payivr.core.flow.events import PaymentDone
from payivr.execution.handler import Lane
from payivr.flows.context import FlowContext


class StartPaymentHandler:
    lane = Lane.AFTER_MEDIA
    after_hangup = False

    async def run(self, command: StartPayment, ctx: FlowContext) -> PaymentDone:
        return await ctx.payments.pay(ctx, command)
