"""HttpRequest: one connector request, while the prompts before it play.

It runs at once (a lookup does not wait for the greeting to end) and after a
hang-up too (the after-hang-up handler's lookups). Failures become ``HttpFailed``
with the connector's kind; the log names the connector and the kind only (a query
may hold the caller's number).
"""

from __future__ import annotations

import logging

from payivr.core.flow.commands import HttpRequest
from payivr.core.flow.events import HttpAnswered, HttpFailed
from payivr.execution.handler import Lane
from payivr.flows.context import ConnectorFailed, FlowContext

log = logging.getLogger("payivr.flow")


class HttpRequestHandler:
    lane = Lane.AT_ONCE
    after_hangup = True

    async def run(self, command: HttpRequest, ctx: FlowContext) -> HttpAnswered | HttpFailed:
        try:
            answer = await ctx.connectors.request(
                command.connector, command.method, command.path, dict(command.query), command.body
            )
        except ConnectorFailed as exc:
            log.info("flow call %s: connector %s: %s", ctx.label, command.connector, exc.kind)
            return HttpFailed(exc.kind, exc.status)
        return HttpAnswered(answer.status, answer.body)
