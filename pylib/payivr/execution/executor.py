"""The executor: one engine's commands, from its start to its last prompt.

    ctx = CallContext(...)          # a payment: the plan, session, telephone, hooks
    await Executor().run(ctx)
    await Executor(FLOW_REGISTRY).run(FlowContext(...))   # a flow call

Identical for every driver and engine: the order and lanes of
payivr.execution.handler, a hang-up heard by the engine exactly once
(``Run.caller_gone``), the commands the engine committed to (a processor call, a
result, a flow's after-hang-up work) carried out after a hang-up and the rest
dropped, the failure recorded when something breaks (``Run.record_failure``: for a
payment ``failed``/``internal-error`` if no result was recorded), and the engine's
secrets wiped however the run ends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from payivr.esl.channel import CallerGone
from payivr.execution.context import Run
from payivr.execution.handler import Handler, Lane
from payivr.execution.lane import MediaLane
from payivr.execution.registry import REGISTRY, handler_for


class Executor:
    def __init__(self, registry: Mapping[type, Handler] = REGISTRY) -> None:
        self.registry = registry

    async def run(self, ctx: Run) -> None:
        """Run the engine of ``ctx`` to its end. Exceptions other than the caller's
        hang-up propagate, after the failure is recorded and the secrets wiped."""
        lane = MediaLane(ctx, self.registry)
        ctx.lane = lane
        try:
            try:
                await ctx.prepare()
                first = ctx.begin()
            except CallerGone:
                first = ctx.caller_gone()  # the engine ends it as caller-hangup
            await self._drive(ctx, lane, first)
        except Exception:
            await lane.cancel()
            await ctx.record_failure()
            raise
        except BaseException:  # cancelled (the service stops): no result to record
            await lane.cancel()
            raise
        finally:
            ctx.plan.wipe()
            await ctx.cleanup()

    async def _drive(self, ctx: Run, lane: MediaLane, first: list[Any]) -> None:
        pending: deque[Any] = deque(first)
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
