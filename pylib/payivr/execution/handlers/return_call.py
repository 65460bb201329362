"""ReturnCall: the driver returns the call (hang-up or transfer, with the result)."""

from __future__ import annotations

from payivr.core.plan import ReturnCall
from payivr.execution.context import CallContext
from payivr.execution.handler import Lane


class ReturnCallHandler:
    lane = Lane.MEDIA  # after the goodbye has played
    after_hangup = False

    async def run(self, command: ReturnCall, ctx: CallContext) -> None:
        await ctx.hooks.return_call(ctx)
