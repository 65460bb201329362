"""What the command handlers of one call share: the engine, the session, the ports.

``CallContext`` is one payment's run, built by the driver (ESL call, agent payment,
simulate, a flow's ``pay``) and handed to ``Executor.run``; a flow call's run is
``payivr.flows.context.FlowContext``. Both are a ``Run``: what the executor needs of
any engine's run. ``DriverHooks`` is what a driver adds to the common steps (its
no-op defaults are what a driver that adds nothing gets).
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
from payivr.core.plan import CallerHungUp, Command, Event, FieldReport, Finish
from payivr.core.processor import Processor, ProcessorAnswer
from payivr.core.reasons import Reason
from payivr.core.result import Outcome, PaymentResult
from payivr.core.session import Event as SessionEvent
from payivr.core.session import Session, SessionState
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

    @property
    def last_field(self) -> FieldReport | None:
        """The verdict on a card field of the last handle(), if any."""
        ...

    def start(self) -> list[Any]: ...

    def handle(self, event: Any) -> list[Any]: ...

    def wipe(self) -> None:
        """Zero every piece of card data the engine holds (idempotent)."""
        ...


class StepHooks(Protocol):
    """The driver's hooks the executor calls per command."""

    def skips(self, command: Any) -> bool: ...

    def started(self, command: Any) -> None: ...


class Run(Protocol):
    """What the executor drives: one engine's run on one call."""

    lane: MediaLane | None  # set by the executor for the run

    @property
    def label(self) -> str: ...

    @property
    def plan(self) -> Engine: ...

    @property
    def telephone(self) -> Telephone: ...

    @property
    def hooks(self) -> StepHooks: ...

    async def prepare(self) -> None:
        """Before the engine starts (the driver's ``prepare`` hook)."""
        ...

    async def cleanup(self) -> None:
        """At the end, however it ended (the driver's ``cleanup`` hook)."""
        ...

    def begin(self) -> list[Any]:
        """The engine's first commands (after ``hooks.prepare``)."""
        ...

    def feed(self, event: Any) -> list[Any]:
        """Give the engine one event; its commands."""
        ...

    def caller_gone(self) -> list[Any]:
        """The caller hung up: the engine hears it once; its commands."""
        ...

    async def record_failure(self) -> None:
        """Something broke before the run ended: record what the merchant must know."""
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

    def settled(self, answer: ProcessorAnswer, seconds: float) -> None:
        """The processor's settled answer, `seconds` after the charge was sent."""

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

    async def prepare(self) -> None:
        await self.hooks.prepare(self)

    async def cleanup(self) -> None:
        await self.hooks.cleanup(self)

    def begin(self) -> list[Command]:
        """The payment starts: `capturing` on the session, the plan's first commands."""
        self.store.later(self.store.store.set_state, self.session, SessionState.CAPTURING,
                         self.clock())  # fmt: skip
        return self.plan.start()

    async def record_failure(self) -> None:
        """An unexpected error: record `failed` if nothing was recorded yet, so the
        merchant hears of it (the dialplan fallback then returns an ESL call)."""
        if self.result is not None:
            return
        # Imported here: the handlers import this module.
        from payivr.execution.handlers.finish import FinishHandler

        try:
            await FinishHandler().run(Finish(Outcome.failed(Reason.INTERNAL_ERROR)), self)
        except Exception as exc:
            log.error("call %s: could not record the failure: %s", self.label, type(exc).__name__)

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
        media_lost = self.telephone.media_lost
        if media_lost:
            log.warning("call %s: media server lost (socket closed, no hang-up)", self.label)
        else:
            log.info("call %s: caller hung up", self.label)
        try:
            return self.feed(CallerHungUp(media_lost=media_lost))
        except IllegalTransition:
            return []  # the plan had nothing left that a hang-up changes
