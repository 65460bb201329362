"""One agent-started payment on a secure-trunk call: the capture plan, driven live.

The plan (payivr.core.plan) decides; the ESL layer's CommandExecutor plays prompts
and collects fields on the caller's leg; this module adds what agent mode needs on
top: the agent-leg guard (no DTMF, no tones), live progress for the panel, the
agent's restart and cancel, and the result to the agent's leg. Prompts that end a
call ("goodbye", "transferring you back") and ReturnCall are skipped: the caller
stays with the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from payivr.agent.guard import AgentLegGuard
from payivr.agent.publisher import Publisher
from payivr.agent.settings import AgentSettings
from payivr.core.config import MerchantConfig
from payivr.core.plan import (
    CallerHungUp,
    CapturePlan,
    Collect,
    Command,
    DigitsEntered,
    Field,
    Finish,
    Play,
    ProcessorAnswered,
    ProcessPayment,
    ReturnCall,
    State,
)
from payivr.core.plan.events import Event as PlanEvent
from payivr.core.processor import Processor, ProcessorAnswer
from payivr.core.progress import ProgressTracker
from payivr.core.prompts import PromptId
from payivr.core.reasons import Reason
from payivr.core.result import Outcome, PaymentResult, build_result, result_headers
from payivr.core.secrets import SecretDigits
from payivr.core.session import Event, Session, SessionState, new_event_id
from payivr.esl.channel import CallChannel, CallerGone
from payivr.esl.executor import CommandExecutor, Speech
from payivr.esl.recordings import RecordingMasker
from payivr.processors.outcome import charge_and_settle

log = logging.getLogger("payivr.agent")

COLLECTING = (State.CARD_NUMBER, State.EXPIRY, State.CVV, State.CONFIRM)
CALL_ENDING_PROMPTS = frozenset({PromptId.GOODBYE.value, PromptId.TRANSFER_BACK.value})
RESULT_CONTENT_TYPE = ("application", "vnd.payivr.result+json")


@dataclasses.dataclass
class PaymentContext:
    """What a payment needs from its call and the process."""

    channel: CallChannel
    agent_uuid: str
    call_id: str
    merchant: MerchantConfig
    settings: AgentSettings
    store: Any  # payivr.store.redis_store.RedisSessionStore (synchronous)
    processor: Processor
    speech_dir: Any  # pathlib.Path of the prompts
    publisher: Publisher
    now: Callable[[], datetime]


class AgentPayment:
    """Runs one payment to its recorded result. `control()` takes restart/cancel."""

    def __init__(self, ctx: PaymentContext, session: Session) -> None:
        self.ctx = ctx
        self.session = session
        self.tracker = ProgressTracker(session.id)
        self.plan = CapturePlan(session.request, ctx.merchant, ctx.now().date())
        self.executor = CommandExecutor(
            ctx.channel,
            Speech(ctx.speech_dir, session.request.language),
            RecordingMasker(ctx.channel),
        )
        self.guard = AgentLegGuard(ctx.channel, ctx.agent_uuid, ctx.settings)
        self.collecting: Field | None = None
        self.result: PaymentResult | None = None
        self._interrupt: str | None = None  # "restart" or "cancel", set by control()
        self._cancelled = False
        # The processor's raw code and the reversal's outcome, stored with the result.
        self._processor_fields: dict[str, str] | None = None

    @property
    def id(self) -> str:
        return self.session.id

    # -- the agent's controls ----------------------------------------------------------

    async def control(self, command: str, field: str | None = None) -> None:
        """Restart the open field, or cancel: interrupt what the caller hears now."""
        if self.plan.finished or self.plan.state is State.PROCESSING:
            self.ctx.publisher.put(
                self.tracker.notice(f"{command}-refused", "the payment is already processing")
            )
            return
        if command == "restart" and (
            field is None or self.collecting is None or self.collecting.value != field
        ):
            self.ctx.publisher.put(
                self.tracker.notice("restart-refused", f"{field} is not open for input")
            )
            return
        self._interrupt = command
        # uuid_break ends the playback or the digit collection running on the caller's
        # leg now (CF_BREAK); what was keyed so far is wiped unread.
        with contextlib.suppress(CallerGone):
            await self.ctx.channel.api(f"uuid_break {self.ctx.channel.uuid} all")

    def key_pressed(self, is_digit: bool) -> None:
        event = self.tracker.key_pressed(is_digit)
        if event is not None:
            self.ctx.publisher.put(event)

    # -- the run ---------------------------------------------------------------------

    async def run(self) -> PaymentResult | None:
        request = self.session.request
        self.ctx.publisher.put(
            self.tracker.started(str(request.operation), request.amount, request.currency)
        )
        self.session = await self._store(
            self.ctx.store.set_state, self.session, SessionState.CAPTURING, self.ctx.now()
        )
        try:
            await self.guard.on()
            await self._drive(self.plan.start())
        finally:
            await self._cleanup()
        return self.result

    async def _cleanup(self) -> None:
        with contextlib.suppress(CallerGone):
            await self.guard.off()
        if not self.plan.finished:
            # Whatever went wrong, the plan must drop the card data it holds.
            with contextlib.suppress(Exception):
                self.plan.handle(CallerHungUp())

    async def _drive(self, first: list[Command]) -> None:
        queue: deque[Command] = deque(first)
        while queue or self._cancel_pending():
            if self._cancel_pending():
                queue = deque(self._feed(CallerHungUp(), cancelled=True))
                continue
            command = queue.popleft()
            for event in self.tracker.commands([command]):
                self.ctx.publisher.put(event)
            try:
                answer = await self._do(command)
            except CallerGone:
                if self.plan.finished:
                    return  # the result is recorded; the caller left during the goodbye
                queue = deque(self._feed(CallerHungUp()))
                continue
            if isinstance(answer, _Cancelled):
                continue  # the top of the loop feeds the cancel to the plan
            if answer is not None:
                queue.extend(self._feed(answer))

    def _cancel_pending(self) -> bool:
        return self._interrupt == "cancel" and self.plan.state in COLLECTING

    def _feed(self, event: PlanEvent, *, cancelled: bool = False) -> list[Command]:
        if cancelled:
            self._cancelled = True
            self._interrupt = None
        commands = self.plan.handle(event)
        report = self.plan.last_field
        for progress in self.tracker.report(report):
            self.ctx.publisher.put(progress)
        if report is not None:
            self.ctx.publisher.later(
                self._store(
                    self.ctx.store.append_event,
                    Event.FIELD_COMPLETED,
                    self.session,
                    self.ctx.now(),
                    **report.event_fields(),
                )
            )
        return commands

    async def _do(self, command: Command) -> PlanEvent | _Cancelled | None:
        if isinstance(command, Collect):
            return await self._collect(command)
        if isinstance(command, Play) and command.prompt in CALL_ENDING_PROMPTS:
            return None  # the caller stays with the agent: no goodbye
        if await self.executor.media(command):
            return None
        if isinstance(command, ProcessPayment):
            return await self._process(command)
        elif isinstance(command, Finish):
            await self._finish(command.outcome)
        elif isinstance(command, ReturnCall):
            pass  # agent mode: the caller stays with the agent
        return None

    async def _collect(self, command: Collect) -> PlanEvent | _Cancelled:
        self.collecting = command.field
        try:
            event = await self.executor.collect(command)
        finally:
            self.collecting = None
        if self._interrupt is None:
            return event
        # The agent interrupted this field: whatever was keyed is wiped unread.
        if isinstance(event, DigitsEntered):
            event.digits.wipe()
        interrupt, self._interrupt = self._interrupt, None
        if interrupt == "cancel":
            self._interrupt = "cancel"  # _drive feeds the cancel at the top of the loop
            return _Cancelled()
        return DigitsEntered(command.field, SecretDigits(""), "*")

    async def _process(self, command: ProcessPayment) -> ProcessorAnswered:
        self.session = await self._store(
            self.ctx.store.set_state, self.session, SessionState.PROCESSING, self.ctx.now()
        )
        request = self.session.request
        merchant = self.ctx.merchant
        charge = command.charge_request(request, timeout_s=merchant.processor.timeout_s)
        try:
            outcome = await asyncio.to_thread(charge_and_settle, self.ctx.processor, charge)
            answer: ProcessorAnswer = outcome.answer
            self._processor_fields = outcome.session_fields()
        finally:
            if command.cvv is not None:
                command.cvv.wipe()
        return ProcessorAnswered(answer)

    async def _finish(self, outcome: Outcome) -> None:
        if self._cancelled:
            outcome = Outcome.cancelled(Reason.CANCELLED_BY_AGENT)
        now = self.ctx.now()
        result = build_result(
            self.session.request,
            session_id=self.session.id,
            event_id=new_event_id(),
            created_at=self.session.created_at,
            completed_at=now,
            outcome=outcome,
        )
        # One transaction: result on the session, outbox entry for the callback, event.
        self.session = await self._store(
            self.ctx.store.record_result, self.session, result, now, self._processor_fields
        )
        self.result = result
        # The card span is over: the agent's leg gets DTMF and audio back before the
        # agent sees the result (and can start the next payment).
        with contextlib.suppress(CallerGone):
            await self.guard.off()
        if self.ctx.settings.result_info:
            with contextlib.suppress(CallerGone):
                await self._info_to_agent(result, int(now.timestamp()))
        self.ctx.publisher.put(self.tracker.finished(result))

    async def _info_to_agent(self, result: PaymentResult, now: int) -> None:
        """The result as a SIP INFO on the agent's leg: signed X-Pay-* headers, JSON body."""
        from payivr.core.result import callback_body

        secret = self.ctx.merchant.signing_secret.encode()
        headers = result_headers(result, secret, self.ctx.call_id, now)
        names = [f"sip_info_h_{name}" for name, _ in headers]
        agent = self.ctx.agent_uuid
        pairs = ";".join(f"sip_info_h_{name}={value}" for name, value in headers)
        reply = await self.ctx.channel.api(
            f"uuid_setvar_multi {agent} fs_send_unsupported_info=true;{pairs}"
        )
        if not reply.startswith("+OK"):
            return  # the agent's leg is gone
        body = callback_body(result).decode("utf-8").replace(" ", "")
        kind, sub = RESULT_CONTENT_TYPE
        await self.ctx.channel.api(f"uuid_send_info {agent} {kind} {sub} {body}")
        await self.ctx.channel.api(f"uuid_setvar_multi {agent} " + ";".join(f"{n}=" for n in names))

    async def _store(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)


@dataclasses.dataclass(frozen=True)
class _Cancelled:
    """Internal marker: the agent cancelled during a field (never reaches the plan)."""
