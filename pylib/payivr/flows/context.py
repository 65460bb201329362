"""What a flow call's command handlers share: the engine, the caller, the ports.

``FlowContext`` is the executor's ``Run`` for a flow (``Executor(FLOW_REGISTRY)``):
the ESL flow driver and ``payivr flows simulate`` build one with their own
``FlowTelephone`` and ``FlowHooks``; the ports (``Connectors``, ``Comments``,
``FlowEvents``, ``Payments``) are the same objects for both.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from payivr.core.errors import IllegalTransition
from payivr.core.flow import FlowEngine
from payivr.core.flow.commands import CollectKeys, EnterQueue, StartPayment, Transfer
from payivr.core.flow.events import CallerHungUp, KeysEntered, NoInput, PaymentDone, QueueLeft
from payivr.core.result import PaymentResult
from payivr.execution.telephone import Telephone

if TYPE_CHECKING:
    from payivr.execution.lane import MediaLane

log = logging.getLogger("payivr.flow")


class FlowTelephone(Telephone, Protocol):
    """The caller's side for a flow (the payment's Telephone, plus flow media)."""

    async def play_prompt(self, flow: str, name: str, language: str) -> None: ...

    async def say_value(self, kind: str, value: str, language: str) -> None: ...

    async def speak(self, text: str, language: str) -> None: ...

    async def collect_keys(self, command: CollectKeys) -> KeysEntered | NoInput: ...

    async def enter_queue(self, command: EnterQueue) -> QueueLeft: ...

    async def hang_up(self) -> None: ...

    def payment_telephone(self, language: str) -> Telephone:
        """The same caller, for a ``pay`` activity's capture plan in ``language``."""
        ...


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: object


class ConnectorFailed(Exception):
    """The connector gave no usable answer: ``kind`` timeout, unavailable, rejected,
    not-found (the flow's ``error``)."""

    def __init__(self, kind: str, status: int | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.status = status


class Connectors(Protocol):
    async def request(
        self,
        name: str,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: object,
    ) -> HttpAnswer:
        """One request through the named connector; ConnectorFailed otherwise."""
        ...


class Comments(Protocol):
    async def enqueue(self, connector: str, ticket_id: str, body: str, *, call_id: str) -> str:
        """Queue a ticket comment in the durable outbox; its id."""
        ...


class FlowEvents(Protocol):
    async def publish(self, name: str, fields: Mapping[str, str]) -> None:
        """Append one flow event to payivr:events."""
        ...


class Payments(Protocol):
    async def pay(self, ctx: FlowContext, command: StartPayment) -> PaymentDone:
        """Take the payment with the capture plan through the executor."""
        ...


class FlowHooks:
    """What a driver adds to a flow run (no-op defaults)."""

    def skips(self, command: Any) -> bool:
        return False

    def started(self, command: Any) -> None:
        """A command begins now."""

    async def prepare(self, ctx: FlowContext) -> None:
        """Before the flow starts (answer the call)."""

    async def transfer(self, ctx: FlowContext, command: Transfer) -> None:
        """Hand the call on (with the last payment's headers when asked)."""

    async def cleanup(self, ctx: FlowContext) -> None:
        """However the run ended."""


@dataclass
class FlowContext:
    """One flow call's run (the executor's Run)."""

    label: str
    plan: FlowEngine
    telephone: FlowTelephone
    connectors: Connectors
    comments: Comments
    events: FlowEvents
    payments: Payments
    hooks: FlowHooks = field(default_factory=FlowHooks)
    lane: MediaLane | None = None
    # Left by the handlers:
    payment: PaymentResult | None = None  # the last `pay` result (for its headers)
    payment_merchant: str = ""
    comments_queued: int = 0
    _told_hangup: bool = False

    async def prepare(self) -> None:
        await self.hooks.prepare(self)

    async def cleanup(self) -> None:
        await self.hooks.cleanup(self)

    def begin(self) -> list[Any]:
        return self.plan.start()

    def feed(self, event: Any) -> list[Any]:
        return self.plan.handle(event)

    def caller_gone(self) -> list[Any]:
        if self._told_hangup:
            return []
        self._told_hangup = True
        log.info("flow call %s: caller hung up", self.label)
        try:
            return self.plan.handle(CallerHungUp())
        except IllegalTransition:
            return []

    async def record_failure(self) -> None:
        """The flow broke (a bug, a port that failed): say so in the event stream."""
        try:
            await self.events.publish(
                "flow.ended",
                {"flow": self.plan.flow.name, "entry": self.plan.call.entry,
                 "call": self.plan.call.call_id, "ended_by": "error"},
            )  # fmt: skip
        except Exception as exc:
            log.error("flow call %s: could not record the failure: %s", self.label,
                      type(exc).__name__)  # fmt: skip
