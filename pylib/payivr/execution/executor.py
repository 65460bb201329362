"""The executor: one payment's commands, from the plan's start to its last prompt.

    ctx = CallContext(...)          # the driver's plan, session, telephone, hooks
    await Executor().run(ctx)

Identical for every driver: the order and lanes of payivr.execution.handler, a
hang-up heard by the plan exactly once (``CallContext.caller_gone``), the commands
the plan committed to (processor call, result) carried out after a hang-up and the
rest dropped, ``failed``/``internal-error`` recorded when something breaks before a
result was, and the plan's card data wiped however the run ends.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping

from payivr.core.plan import Command, Finish
from payivr.core.reasons import Reason
from payivr.core.result import Outcome
from payivr.core.session import SessionState
from payivr.esl.channel import CallerGone
from payivr.execution.context import CallContext
from payivr.execution.handler import Handler, Lane
from payivr.execution.lane import MediaLane
from payivr.execution.registry import REGISTRY, handler_for

log = logging.getLogger("payivr.call")


class Executor:
    def __init__(self, registry: Mapping[type, Handler] = REGISTRY) -> None:
        self.registry = registry

    async def run(self, ctx: CallContext) -> None:
        """Run the plan of ``ctx`` to its end. Exceptions other than the caller's
        hang-up propagate, after the failure is recorded and the card data wiped."""
        lane = MediaLane(ctx, self.registry)
        ctx.lane = lane
        try:
            try:
                await ctx.hooks.prepare(ctx)
                store = ctx.store
                store.later(store.store.set_state, ctx.session, SessionState.CAPTURING, ctx.clock())
                first = ctx.plan.start()
            except CallerGone:
                first = ctx.caller_gone()  # the plan ends it as caller-hangup
            await self._drive(ctx, lane, first)
        except Exception:
            await lane.cancel()
            await self._record_failure(ctx)
            raise
        except BaseException:  # cancelled (the service stops): no result to record
            await lane.cancel()
            raise
        finally:
            ctx.plan.wipe()
            await ctx.hooks.cleanup(ctx)

    async def _drive(self, ctx: CallContext, lane: MediaLane, first: list[Command]) -> None:
        pending: deque[Command] = deque(first)
        while True:
            if not pending:
                try:
                    await lane.idle()  # the last prompts play; a hang-up there counts
                except CallerGone:
                    pending.extend(ctx.caller_gone())
                if not pending:
                    return
            command = pending.popleft()
            if ctx.hooks.skips(command):
                continue
            handler = handler_for(self.registry, command)
            started = False
            try:
                if handler.lane is Lane.MEDIA:
                    lane.put(command)
                    continue
                if handler.lane is Lane.AFTER_MEDIA:
                    await lane.idle()
                    if ctx.telephone.hungup and not handler.after_hangup:
                        raise CallerGone()
                started = True
                ctx.hooks.started(command)
                event = await handler.run(command, ctx)
            except CallerGone:
                lane.clear()
                kept = [c for c in pending if handler_for(self.registry, c).after_hangup]
                if handler.after_hangup and not started:
                    kept.insert(0, command)  # the hang-up came while the media before it played
                pending = deque(kept)
                pending.extend(ctx.caller_gone())
                continue
            if event is not None:
                pending.extend(ctx.feed(event))

    async def _record_failure(self, ctx: CallContext) -> None:
        """An unexpected error: record `failed` if nothing was recorded yet, so the
        merchant hears of it (the dialplan fallback then returns an ESL call)."""
        if ctx.result is not None:
            return
        finish = Finish(Outcome.failed(Reason.INTERNAL_ERROR))
        try:
            await handler_for(self.registry, finish).run(finish, ctx)
        except Exception as exc:
            log.error("call %s: could not record the failure: %s", ctx.label, type(exc).__name__)
