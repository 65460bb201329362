"""Collect: one entry from the caller, handed to the plan in SecretDigits."""

from __future__ import annotations

import asyncio

from payivr.core.plan import Collect, Event
from payivr.execution.context import CallContext
from payivr.execution.handler import Lane


class CollectHandler:
    lane = Lane.AFTER_MEDIA
    after_hangup = False

    async def run(self, command: Collect, ctx: CallContext) -> Event:
        try:
            return await ctx.telephone.collect(command)
        finally:
            # When the last key may have sounded: the unmask guard counts from here.
            ctx.last_input_at = asyncio.get_running_loop().time()
