"""The one registry: which handler carries out each command type.

A new command is a handler module (``handlers/`` for the capture plan's,
``payivr/flows/handlers/`` for a flow's) and one line here. ``Executor(REGISTRY)`` runs
a payment, ``Executor(FLOW_REGISTRY)`` a flow call.
"""

from __future__ import annotations

from collections.abc import Mapping

from payivr.core.flow import commands as flow
from payivr.core.plan import (
    Collect,
    Finish,
    Listen,
    MaskRecording,
    Play,
    ProcessPayment,
    ReadBackDigits,
    ReturnCall,
    SayAmount,
    SayDigits,
    UnmaskRecording,
)
from payivr.execution.handler import Handler
from payivr.execution.handlers.collect import CollectHandler
from payivr.execution.handlers.finish import FinishHandler
from payivr.execution.handlers.listen import ListenHandler
from payivr.execution.handlers.play import PlayHandler
from payivr.execution.handlers.process_payment import ProcessPaymentHandler
from payivr.execution.handlers.read_back import ReadBackHandler
from payivr.execution.handlers.recording import MaskHandler, UnmaskHandler
from payivr.execution.handlers.return_call import ReturnCallHandler
from payivr.execution.handlers.say_amount import SayAmountHandler
from payivr.execution.handlers.say_digits import SayDigitsHandler
from payivr.flows.handlers.call_end import HangUpHandler, TransferHandler
from payivr.flows.handlers.collect_keys import CollectKeysHandler
from payivr.flows.handlers.enter_queue import EnterQueueHandler
from payivr.flows.handlers.http_request import HttpRequestHandler
from payivr.flows.handlers.media import PlayPromptHandler, SayValueHandler, SpeakHandler
from payivr.flows.handlers.post_comment import PostCommentHandler
from payivr.flows.handlers.publish_event import PublishEventHandler
from payivr.flows.handlers.start_payment import StartPaymentHandler

# The capture plan's commands (payivr.core.plan.commands).
REGISTRY: Mapping[type, Handler] = {
    Play: PlayHandler(),
    SayAmount: SayAmountHandler(),
    SayDigits: SayDigitsHandler(),
    Collect: CollectHandler(),
    Listen: ListenHandler(),
    ReadBackDigits: ReadBackHandler(),
    MaskRecording: MaskHandler(),
    UnmaskRecording: UnmaskHandler(),
    ProcessPayment: ProcessPaymentHandler(),
    Finish: FinishHandler(),
    ReturnCall: ReturnCallHandler(),
}

# A flow call runs the flow engine's commands (payivr.core.flow.commands); its `pay`
# runs the capture plan's through REGISTRY, by the same executor.
FLOW_REGISTRY: Mapping[type, Handler] = {
    flow.PlayPrompt: PlayPromptHandler(),
    flow.SayValue: SayValueHandler(),
    flow.Speak: SpeakHandler(),
    flow.CollectKeys: CollectKeysHandler(),
    flow.HttpRequest: HttpRequestHandler(),
    flow.EnterQueue: EnterQueueHandler(),
    flow.Transfer: TransferHandler(),
    flow.HangUp: HangUpHandler(),
    flow.StartPayment: StartPaymentHandler(),
    flow.PostComment: PostCommentHandler(),
    flow.PublishEvent: PublishEventHandler(),
}


class UnknownCommand(Exception):
    """An engine emitted a command no handler is registered for (a wiring bug)."""


def handler_for(registry: Mapping[type, Handler], command: object) -> Handler:
    handler = registry.get(type(command))
    if handler is None:
        raise UnknownCommand(type(command).__name__)
    return handler
