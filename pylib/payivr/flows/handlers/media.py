"""PlayPrompt, SayValue, Speak: what the caller hears, on the media lane."""

from __future__ import annotations

from payivr.core.flow.commands import PlayPrompt, SayValue, Speak
from payivr.execution.handler import Lane
from payivr.flows.context import FlowContext


class PlayPromptHandler:
    lane = Lane.MEDIA
    after_hangup = False

    async def run(self, command: PlayPrompt, ctx: FlowContext) -> None:
        await ctx.telephone.play_prompt(command.flow, command.name, command.language)


class SayValueHandler:
    lane = Lane.MEDIA
    after_hangup = False

    async def run(self, command: SayValue, ctx: FlowContext) -> None:
        await ctx.telephone.say_value(command.kind, command.value, command.language)


class SpeakHandler:
    lane = Lane.MEDIA
    after_hangup = False

    async def run(self, command: Speak, ctx: FlowContext) -> None:
        await ctx.telephone.speak(command.text, command.language)
