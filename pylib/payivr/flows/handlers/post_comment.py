"""PostComment: the ticket comment goes into the durable outbox (delivered later)."""

from __future__ import annotations

import logging

from payivr.core.flow.commands import PostComment
from payivr.execution.handler import Lane
from payivr.flows.context import FlowContext

log = logging.getLogger("payivr.flow")


class PostCommentHandler:
    lane = Lane.AT_ONCE
    after_hangup = True  # the usual place: the after-hang-up handler

    async def run(self, command: PostComment, ctx: FlowContext) -> None:
        await ctx.comments.enqueue(
            command.connector, command.ticket_id, command.body, call_id=ctx.plan.call.call_id
        )
        ctx.comments_queued += 1
        log.info("flow call %s: comment queued for connector %s", ctx.label, command.connector)
