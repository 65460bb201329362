"""Listen: spoken digits for a field, or its keypad entry where the caller keys
(or the telephone cannot listen)."""

from __future__ import annotations

import asyncio

from payivr.core.plan import Event, Listen
from payivr.execution.context import CallContext
from payivr.execution.handler import Lane
from payivr.execution.telephone import ListeningTelephone


class ListenHandler:
    lane = Lane.AFTER_MEDIA
    after_hangup = False

    async def run(self, command: Listen, ctx: CallContext) -> Event:
        try:
            if isinstance(ctx.telephone, ListeningTelephone):
                return await ctx.telephone.listen(command)
            return await ctx.telephone.collect(command.keyed)
        finally:
            # A key may have sounded (barge-in): the unmask guard counts from here.
            ctx.last_input_at = asyncio.get_running_loop().time()
