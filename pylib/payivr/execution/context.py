"""What the command handlers of one call share: the plan, the session, the ports.

``CallContext`` is built by the driver (ESL call, agent payment, simulate) and handed
to ``Executor.run``; ``DriverHooks`` is what a driver adds to the common steps
(its no-op defaults are what a driver that adds nothing gets).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from payivr.core.config import MerchantConfig
from payivr.core.errors import IllegalTransition
from payivr.core.plan import CallerHungUp, Command, Event, FieldReport
from payivr.core.processor import Processor
from payivr.core.result import PaymentResult
from payivr.core.session import Event as SessionEvent
from payivr.core.session import Session
from payivr.execution.processing import Settlement
from payivr.execution.store import CallStore
from payivr.execution.telephone import Telephone

if TYPE_CHECKING:
    from payivr.execution.lane import MediaLane

log = logging.getLogger("payivr.call")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Engine(Protocol):
    """A pure state machine whose commands the executor runs: the capture plan, or
    another engine (a call flow) registering its own commands' handlers."""

    last_field: FieldReport | None  # the verdict of the last handle(), if any

    def start(self) -> list[Any]: ...

    def handle(self, event: Any) -> list[Any]: ...

    def wipe(self) -> None:
        """Zero every piece of card data the engine holds (idempotent)."""
        ...


class DriverHooks:
    """What one kind of driver adds to the executor's common steps."""

    def skips(self, command: Command) -> bool:
        """True for a command this driver does not carry out (agent mode: goodbye)."""
        return False

    async def prepare(self, ctx: CallContext) -> None:
        """Before the plan starts (answer the call, switch protections on)."""

    def started(self, command: Command) -> None:
        """A command begins now (agent mode publishes progress from it)."""

    def reported(self, report: FieldReport) -> None:
        """The plan's verdict on an entry (after the field.completed event is queued)."""

    async def recorded(self, ctx: CallContext, result: PaymentResult) -> None:
        """The result is stored (session, outbox, event): tell whoever must know now."""

    async def return_call(self, ctx: CallContext) -> None:
        """Carry out ReturnCall (hang up or transfer with the result's headers)."""

    async def cleanup(self, ctx: CallContext) -> None:
        """At the end of the run, however it ended (must not raise CallerGone)."""


@dataclass
class CallContext:
    """One payment's run: what the handlers read and the results they leave."""

    label: str  # the call's id in log lines
    plan: Engine
    session: Session
    merchant: MerchantConfig
    telephone: Telephone
    store: CallStore
    processor: Processor
    processor_timeout_s: float
    hooks: DriverHooks = field(default_factory=DriverHooks)
    pool: Executor | None = None  # threads for the processor (None: the loop's default)
    clock: Callable[[], datetime] = utc_now
    # Left by the handlers:
    settlement: Settlement | None = None
    result: PaymentResult | None = None
    last_input_at: float | None = None  # loop time the last Collect ended
    lane: MediaLane | None = None  # set by the executor for the run
    _told_hangup: bool = field(default=False, init=False)

    def feed(self, event: Event) -> list[Command]:
        """Give the plan one event; queue the field.completed event of its verdict."""
        commands = self.plan.handle(event)
        report = self.plan.last_field
        if report is not None:
            self.store.later(
                self.store.store.append_event,
                SessionEvent.FIELD_COMPLETED,
                self.session,
                self.clock(),
                **report.event_fields(),
            )
            self.hooks.reported(report)
        return commands

    def caller_gone(self) -> list[Command]:
        """The caller hung up: the plan hears it once, however often it is noticed
        (a media command failing, the processor's hang-up watch, the socket closing)."""
        if self._told_hangup:
            return []
        self._told_hangup = True
        log.info("call %s: caller hung up", self.label)
        try:
            return self.feed(CallerHungUp())
        except IllegalTransition:
            return []  # the plan had nothing left that a hang-up changes
