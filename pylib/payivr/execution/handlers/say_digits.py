"""SayDigits: a last four or an authorisation code, one character at a time."""

from __future__ import annotations

from payivr.core.plan import SayDigits
from payivr.execution.context import CallContext
from payivr.execution.handler import Lane


class SayDigitsHandler:
    lane = Lane.MEDIA
    after_hangup = False

    async def run(self, command: SayDigits, ctx: CallContext) -> None:
        await ctx.telephone.say_digits(command.digits)
