"""SayAmount: an amount in minor units, said in the call's language."""

from __future__ import annotations

from payivr.core.plan import SayAmount
from payivr.execution.context import CallContext
from payivr.execution.handler import Lane


class SayAmountHandler:
    lane = Lane.MEDIA
    after_hangup = False

    async def run(self, command: SayAmount, ctx: CallContext) -> None:
        await ctx.telephone.say_amount(command.amount, command.currency)
