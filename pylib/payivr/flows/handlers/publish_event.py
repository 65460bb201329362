"""PublishEvent: one flow event on payivr:events (a failure is logged, not fatal)."""

from __future__ import annotations

import logging

from payivr.core.flow.commands import PublishEvent
from payivr.execution.handler import Lane
from payivr.flows.context import FlowContext

log = logging.getLogger("payivr.flow")


class PublishEventHandler:
    lane = Lane.AT_ONCE
    after_hangup = True

    async def run(self, command: PublishEvent, ctx: FlowContext) -> None:
        try:
            await ctx.events.publish(command.name, dict(command.fields))
        except Exception as exc:
            log.error("flow call %s: event %s not written: %s", ctx.label, command.name,
                      type(exc).__name__)  # fmt: skip
