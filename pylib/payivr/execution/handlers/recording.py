"""MaskRecording / UnmaskRecording: the recordings hold no card digit, nor its tone.

The unmask waits out ``UnmaskRecording.guard_ms`` after the last digit collection
ended: a phone sending in-band DTMF besides RFC 2833 leaves the last key's tone in
the audio after the key event, and that tail must fall in the masked span.
"""

from __future__ import annotations

import asyncio

from payivr.core.plan import MaskRecording, UnmaskRecording
from payivr.execution.context import CallContext
from payivr.execution.handler import Lane


class MaskHandler:
    lane = Lane.MEDIA
    after_hangup = False

    async def run(self, command: MaskRecording, ctx: CallContext) -> None:
        await ctx.telephone.mask_recording()


class UnmaskHandler:
    lane = Lane.MEDIA
    after_hangup = False

    async def run(self, command: UnmaskRecording, ctx: CallContext) -> None:
        if ctx.last_input_at is not None:
            loop = asyncio.get_running_loop()
            wait = ctx.last_input_at + command.guard_ms / 1000 - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        await ctx.telephone.unmask_recording()
