"""HangUp and Transfer: the caller's part of the flow ends (after its prompts)."""

from __future__ import annotations

from payivr.core.flow.commands import HangUp, Transfer
from payivr.execution.handler import Lane
from payivr.flows.context import FlowContext


class HangUpHandler:
    lane = Lane.MEDIA
    after_hangup = False

    async def run(self, command: HangUp, ctx: FlowContext) -> None:
        await ctx.telephone.hang_up()


class TransferHandler:
    lane = Lane.MEDIA
    after_hangup = False

    async def run(self, command: Transfer, ctx: FlowContext) -> None:
        await ctx.hooks.transfer(ctx, command)
