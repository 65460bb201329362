"""ReadBackDigits: a spoken chunk said back from the digit prompt files."""

from __future__ import annotations

from payivr.core.plan import ReadBackDigits
from payivr.execution.context import CallContext
from payivr.execution.handler import Lane
from payivr.execution.telephone import ListeningTelephone


class ReadBackHandler:
    lane = Lane.MEDIA
    after_hangup = False

    async def run(self, command: ReadBackDigits, ctx: CallContext) -> None:
        if not isinstance(ctx.telephone, ListeningTelephone):
            # Only a listening telephone produces SpeechHeard, hence a read-back.
            raise RuntimeError("read-back on a telephone that cannot listen")
        await ctx.telephone.read_back(command.digits)
