"""Play: one prompt of the catalogue."""

from __future__ import annotations

from payivr.core.plan import Play
from payivr.execution.context import CallContext
from payivr.execution.handler import Lane


class PlayHandler:
    lane = Lane.MEDIA
    after_hangup = False

    async def run(self, command: Play, ctx: CallContext) -> None:
        await ctx.telephone.play(command.prompt)
