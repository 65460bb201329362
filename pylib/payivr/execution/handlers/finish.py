"""Finish: the result, stored at once (session, outbox entry, event: one transaction).

It does not wait for a prompt to end: the caller may still hear "processing" while
the result is already durable and its callback queued. The driver's hook then tells
whoever must know now (the BYE headers, the agent's panel).
"""

from __future__ import annotations

import asyncio
import logging

from payivr.core.plan import Finish
from payivr.core.result import build_result
from payivr.core.session import new_event_id
from payivr.execution.context import CallContext
from payivr.execution.handler import Lane

log = logging.getLogger("payivr.call")


class FinishHandler:
    lane = Lane.AT_ONCE
    after_hangup = True

    async def run(self, command: Finish, ctx: CallContext) -> None:
        now = ctx.clock()
        result = build_result(
            ctx.session.request,
            session_id=ctx.session.id,
            event_id=new_event_id(),
            created_at=ctx.session.created_at,
            completed_at=now,
            outcome=command.outcome,
        )
        ctx.result = result
        settled = ctx.settlement
        annotations = settled.session_fields() if settled is not None else None
        store = ctx.store
        ctx.session = await store.now(
            store.store.record_result, ctx.session, result, now, annotations
        )
        # First writer wins (payivr.store.transactions): if Kamailio or the watchdog
        # took this call for orphaned and recorded its result first, that result is
        # the session's and the callback's, so it is the one returned with the call.
        result = ctx.session.result or result
        ctx.result = result
        if settled is not None and settled.late is not None:
            store.later(_record_late_reversal, ctx, settled.late)
        log.info(
            "call %s: session %s result %s%s",
            ctx.label,
            ctx.session.id,
            result.code,
            f" ({result.reason})" if result.reason else "",
        )
        await ctx.hooks.recorded(ctx, result)


async def _record_late_reversal(ctx: CallContext, late: asyncio.Future[dict[str, str]]) -> None:
    """The reversal done after payivr gave up on the processor, on the session."""
    await ctx.store.store.annotate(ctx.session.id, **(await late))
