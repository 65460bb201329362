"""ProcessPayment: the processor, asked while the caller hears the hold prompt.

The same for every driver: the merchant's timeout with the outer deadline and the
late reversal of payivr.execution.processing, the caller's hang-up heard by the plan
meanwhile (it then waits for the answer: money may move), and the card data wiped
when the processor has it, whatever happens.
"""

from __future__ import annotations

import logging
import time

from payivr.core.plan import Play, ProcessorAnswered, ProcessPayment
from payivr.core.session import SessionState
from payivr.execution.context import CallContext
from payivr.execution.handler import Lane
from payivr.execution.processing import settle_with_timeout

log = logging.getLogger("payivr.call")


class ProcessPaymentHandler:
    lane = Lane.AFTER_MEDIA  # the caller has heard everything before it (the amount)
    after_hangup = True  # the plan handed over the card: the answer is the truth

    async def run(self, command: ProcessPayment, ctx: CallContext) -> ProcessorAnswered:
        try:
            if command.hold is not None and ctx.lane is not None:
                ctx.lane.put(Play(command.hold))
            store = ctx.store
            store.later(store.store.set_state, ctx.session, SessionState.PROCESSING, ctx.clock())
            charge = command.charge_request(ctx.session.request, timeout_s=ctx.processor_timeout_s)
            sent = time.monotonic()
            ctx.settlement = await settle_with_timeout(
                ctx.processor, charge, ctx.pool, ctx.telephone, ctx.caller_gone
            )
            ctx.hooks.settled(ctx.settlement.answer, time.monotonic() - sent)
        finally:
            # The plan wipes the card when it gets the answer; this makes sure of it
            # even when something above raised first.
            if command.card is not None:
                command.card.wipe()
            if command.cvv is not None:
                command.cvv.wipe()
        answer = ctx.settlement.answer
        log.info(
            "call %s: processor answered %s%s",
            ctx.label,
            answer.code,
            f" ({answer.reason})" if answer.reason else "",
        )
        return ProcessorAnswered(answer)
