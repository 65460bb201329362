"""CollectKeys: a menu choice or digits that are not card data."""

from __future__ import annotations

from payivr.core.flow.commands import CollectKeys
from payivr.core.flow.events import KeysEntered, NoInput
from payivr.execution.handler import Lane
from payivr.flows.context import FlowContext


class CollectKeysHandler:
    lane = Lane.AFTER_MEDIA  # the prompts before it have been heard
    after_hangup = False

    async def run(self, command: CollectKeys, ctx: FlowContext) -> KeysEntered | NoInput:
        return await ctx.telephone.collect_keys(command)
