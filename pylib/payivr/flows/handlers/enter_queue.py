"""EnterQueue: the caller waits with music until an agent answers (and they talk)."""

from __future__ import annotations

from payivr.core.flow.commands import EnterQueue
from payivr.core.flow.events import QueueLeft
from payivr.execution.handler import Lane
from payivr.flows.context import FlowContext


class EnterQueueHandler:
    lane = Lane.AFTER_MEDIA
    after_hangup = False

    async def run(self, command: EnterQueue, ctx: FlowContext) -> QueueLeft:
        return await ctx.telephone.enter_queue(command)
