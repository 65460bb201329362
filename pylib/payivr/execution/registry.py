"""The one registry: which handler carries out each command type.

A new command is a handler module in ``handlers/`` and one line here. Another pure
engine (a call flow) adds its own commands with ``REGISTRY | {...}`` and hands that
mapping to ``Executor``.
"""

from __future__ import annotations

from collections.abc import Mapping

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


class UnknownCommand(Exception):
    """An engine emitted a command no handler is registered for (a wiring bug)."""


def handler_for(registry: Mapping[type, Handler], command: object) -> Handler:
    handler = registry.get(type(command))
    if handler is None:
        raise UnknownCommand(type(command).__name__)
    return handler
