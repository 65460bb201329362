"""One payment call: session from Redis, the capture plan, the processor, the result,
the return of the call.

The plan (payivr.core.plan) decides; this driver only carries out its commands and
feeds back one event per Collect / ProcessPayment. A caller who hangs up at any
point becomes one CallerHungUp for the plan (which ends the session as cancelled,
`caller-hangup`, unless the processor already has the card: then its answer is
awaited and recorded); nothing about it is logged as an error.

Durability: the result is written (session + outbox + event, one Redis transaction)
before the caller hears it, and its BYE headers are put on the channel at once, so a
crash after that point loses nothing and the dialplan fallback returns the call with
the real result. A call whose application dies earlier is returned by the fallback as
failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from payivr.core.config import EslConfig, MerchantConfig
from payivr.core.errors import IllegalTransition
from payivr.core.plan import (
    CallerHungUp,
    CapturePlan,
    Collect,
    Command,
    Event,
    Finish,
    ProcessorAnswered,
    ProcessPayment,
    ReturnCall,
)
from payivr.core.processor import ChargeRequest, Processor
from payivr.core.prompts import LANGUAGES, PromptId
from payivr.core.result import Outcome, PaymentResult, build_result, result_headers
from payivr.core.session import Event as SessionEvent
from payivr.core.session import Session, SessionState, new_event_id
from payivr.core.signature import sign
from payivr.esl.channel import CallChannel, CallerGone
from payivr.esl.executor import CommandExecutor, Speech
from payivr.esl.processing import Settlement, settle_with_timeout
from payivr.esl.recordings import RecordingMasker
from payivr.esl.returning import (
    bye_variables,
    dialog_call_id,
    hang_up_with,
    new_call_id,
    transfer_by_bridge,
    transfer_by_refer,
)
from payivr.store.async_store import AsyncSessionStore

log = logging.getLogger("payivr.esl")

T = TypeVar("T")
SESSION_HEADER = "variable_sip_h_X-Payivr-Session"
REDIS_ATTEMPTS = 3


@dataclass
class EslApplication:
    """Process-wide dependencies; `handle` is the OutboundServer's call handler."""

    store: AsyncSessionStore
    merchants: dict[str, MerchantConfig]
    processor_for: Callable[[str], Processor]
    options: EslConfig
    processor_pool: ThreadPoolExecutor
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def warm_up(self, connections: int = 16) -> None:
        """Open the store's connections now, not on the first calls (latency spikes)."""
        ping = getattr(self.store, "ping", None)
        if ping is not None:
            await asyncio.gather(*(ping() for _ in range(connections)), return_exceptions=True)

    async def handle(self, channel: CallChannel) -> None:
        await PaymentCall(self, channel).run()

    async def io(self, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """A store call, retried briefly when Redis is unreachable for a moment."""
        for attempt in range(REDIS_ATTEMPTS):
            try:
                return await func(*args, **kwargs)
            except (ConnectionError, TimeoutError, OSError) as exc:
                if attempt == REDIS_ATTEMPTS - 1:
                    raise
                log.warning("store call failed (%s), retrying", type(exc).__name__)
            except Exception as exc:
                if not type(exc).__module__.startswith("redis") or attempt == REDIS_ATTEMPTS - 1:
                    raise
                log.warning("store call failed (%s), retrying", type(exc).__name__)
            await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")


class PaymentCall:
    """The per-call driver of the capture plan."""

    def __init__(self, app: EslApplication, channel: CallChannel) -> None:
        self.app = app
        self.channel = channel
        self.session: Session | None = None
        self.merchant: MerchantConfig | None = None
        self.plan: CapturePlan | None = None
        self.executor: CommandExecutor | None = None
        self.result: PaymentResult | None = None
        self._told_hangup = False
        # The processor's raw code and the reversal's outcome, recorded with the result.
        self._settlement: Settlement | None = None
        self._writes: asyncio.Future[None] | None = None

    # -- the call --------------------------------------------------------------------

    async def run(self) -> None:
        session_id = self.channel.channel_data.get(SESSION_HEADER, "").strip()
        session = await self.app.io(self.app.store.load, session_id) if session_id else None
        if session is None or session.state is not SessionState.CREATED:
            reason = "session-not-found" if session is None else "session-already-used"
            log.info("call %s: %s", self.channel.uuid, reason)
            await self._refuse(session_id, reason)
            return
        merchant = self.app.merchants.get(session.request.merchant)
        if merchant is None:
            log.error(
                "call %s: merchant of session %s is no longer configured",
                self.channel.uuid,
                session.id,
            )
            await self._refuse(session_id, "merchant-unknown")
            return
        self.session, self.merchant = session, merchant
        log.info(
            "call %s: session %s merchant %s order %s",
            self.channel.uuid,
            session.id,
            merchant.id,
            session.request.order,
        )
        speech = Speech(self.app.options.prompts_dir, session.request.language)
        self.executor = CommandExecutor(self.channel, speech, RecordingMasker(self.channel))
        self.plan = CapturePlan(session.request, merchant, self.app.clock().date())
        try:
            try:
                await self._prepare_channel()
                self._write(
                    self.app.store.set_state, self.session, SessionState.CAPTURING, self.app.clock()
                )
                commands = self.plan.start()
            except CallerGone:
                commands = self._caller_hung_up()  # the plan ends it as caller-hangup
            await self._run(commands)
        except Exception:
            await self._record_failure()
            raise
        finally:
            self._wipe_plan()
        await self._close()

    async def _record_failure(self) -> None:
        """An unexpected error: record `failed` if nothing was recorded yet, so the
        merchant hears of it; the dialplan fallback then returns the call."""
        if self.result is not None or self.session is None:
            return
        try:
            await self._finish(Finish(Outcome.failed("internal-error")))
        except Exception as exc:
            log.error(
                "call %s: could not record the failure: %s", self.channel.uuid, type(exc).__name__
            )

    def _wipe_plan(self) -> None:
        """Card data the plan may still hold when the call ends abnormally."""
        if self.plan is not None:
            self.plan.wipe()

    async def _prepare_channel(self) -> None:
        data = self.channel.channel_data
        if data.get("variable_sensitive_dtmf") != "true":
            # The dialplan must set it before the socket (docs/esl.md); setting it here
            # protects this call's digits from now on, but the warning must be fixed.
            log.warning("call %s: dialplan did not set sensitive_dtmf=true", self.channel.uuid)
            await self.channel.set_variables({"sensitive_dtmf": "true"})
        await self.channel.execute("answer")
        assert self.merchant is not None and self.session is not None
        if self.merchant.record_ivr_leg:
            path = self.app.options.recordings_dir / f"{self.session.id}.wav"
            await self.channel.execute("record_session", str(path))

    async def _run(self, commands: list[Command]) -> None:
        pending: deque[Command] = deque(commands)
        while pending:
            command = pending.popleft()
            try:
                more = await self._step(command)
            except CallerGone:
                # Prompts and Collects still queued are moot now; a ProcessPayment the
                # plan already issued is not (it waits for that answer), nor a Finish.
                kept = [c for c in pending if isinstance(c, ProcessPayment | Finish)]
                pending = deque(kept)
                more = self._caller_hung_up()
            pending.extend(more)

    async def _step(self, command: Command) -> list[Command]:
        assert self.executor is not None and self.plan is not None
        if isinstance(command, Finish):
            await self._finish(command)
            return []
        if isinstance(command, ProcessPayment):
            return await self._process(command)
        if self.channel.hungup:
            if isinstance(command, Collect):
                raise CallerGone()  # the plan must hear of it: it is waiting for input
            return []  # nothing to play or unmask on a channel that is gone
        if await self.executor.media(command):
            return []
        if isinstance(command, Collect):
            event = await self.executor.collect(command)
            return await self._tell(event)
        elif isinstance(command, ReturnCall):
            await self._return()
        return []

    async def _tell(self, event: Event) -> list[Command]:
        assert self.plan is not None and self.session is not None
        commands = self.plan.handle(event)
        report = self.plan.last_field
        if report is not None:
            self._write(
                self.app.store.append_event,
                SessionEvent.FIELD_COMPLETED,
                self.session,
                self.app.clock(),
                **report.event_fields(),
            )
        return commands

    def _write(self, func: Callable[..., Awaitable[object]], *args: Any, **kwargs: Any) -> None:
        """A bookkeeping write (state change, field event) off the call's critical path.

        Writes of one call run in order, one after the other, in the background; the
        result's write waits for them (`_drain`), so Redis always sees the states in
        order and a step never waits for Redis.
        """
        previous = self._writes

        async def chained() -> None:
            if previous is not None:
                await previous
            try:
                await self.app.io(func, *args, **kwargs)
            except Exception as exc:
                log.error("call %s: store write failed: %s", self.channel.uuid,
                          type(exc).__name__)  # fmt: skip

        self._writes = asyncio.ensure_future(chained())

    async def _drain(self) -> None:
        if self._writes is not None:
            await self._writes

    def _caller_hung_up(self) -> list[Command]:
        if self._told_hangup or self.plan is None:
            return []
        self._told_hangup = True
        log.info("call %s: caller hung up", self.channel.uuid)
        try:
            return self.plan.handle(CallerHungUp())
        except IllegalTransition:
            return []  # the plan had nothing left that a hang-up changes

    # -- processor -------------------------------------------------------------------

    async def _process(self, command: ProcessPayment) -> list[Command]:
        assert self.plan is not None and self.session is not None and self.merchant is not None
        self._write(
            self.app.store.set_state, self.session, SessionState.PROCESSING, self.app.clock()
        )
        charge = command.charge_request(
            self.session.request, timeout_s=self.merchant.processor.timeout_s
        )
        try:
            self._settlement = await self._charge(charge)
            answer = self._settlement.answer
        finally:
            # The plan wipes the card when it gets the answer; this makes sure of it
            # even if something above raised first.
            commands_card = command.card
            if commands_card is not None and not commands_card.wiped:
                commands_card.wipe()
            if command.cvv is not None:
                command.cvv.wipe()
        log.info(
            "call %s: processor answered %s%s",
            self.channel.uuid,
            answer.code,
            f" ({answer.reason})" if answer.reason else "",
        )
        return self.plan.handle(ProcessorAnswered(answer))

    async def _charge(self, charge: ChargeRequest) -> Settlement:
        assert self.merchant is not None
        processor = self.app.processor_for(self.merchant.id)
        return await settle_with_timeout(
            processor, charge, self.app.processor_pool, self.channel, self._caller_hung_up
        )

    # -- result and return -----------------------------------------------------------

    async def _finish(self, command: Finish) -> None:
        assert self.session is not None
        now = self.app.clock()
        result = build_result(
            self.session.request,
            session_id=self.session.id,
            event_id=new_event_id(),
            created_at=self.session.created_at,
            completed_at=now,
            outcome=command.outcome,
        )
        self.result = result
        # Durability first: every earlier write has landed, then the result itself,
        # before the caller hears anything about it.
        await self._drain()
        settled = self._settlement
        annotations = settled.session_fields() if settled is not None else None
        self.session = await self.app.io(
            self.app.store.record_result, self.session, result, now, annotations
        )
        if settled is not None and settled.late is not None:
            self._write(self._record_late_reversal, self.session.id, settled.late)
        log.info(
            "call %s: session %s result %s%s",
            self.channel.uuid,
            self.session.id,
            result.code,
            f" ({result.reason})" if result.reason else "",
        )
        if not self.channel.hungup:
            # For the dialplan fallback, should this process die before the return.
            with contextlib.suppress(CallerGone):
                await self.channel.set_variables(
                    {**bye_variables(self._headers(dialog_call_id(self.channel, "")))}
                )

    async def _record_late_reversal(
        self, session_id: str, late: asyncio.Future[dict[str, str]]
    ) -> None:
        """The reversal done after payivr gave up on the processor, on the session."""
        await self.app.store.annotate(session_id, **(await late))

    def _headers(self, call_id: str) -> list[tuple[str, str]]:
        assert self.result is not None and self.merchant is not None and self.session is not None
        call_id = call_id or self.session.request.call_id
        return result_headers(
            self.result, self.merchant.signing_secret.encode(), call_id, int(time.time())
        )

    async def _return(self) -> None:
        assert self.session is not None and self.result is not None
        request = self.session.request
        settings = self.app.options.returns
        dialog = dialog_call_id(self.channel, request.call_id)
        how = "hangup"
        if request.return_to.kind == "hangup":
            await hang_up_with(self.channel, self._headers(dialog), settings)
        else:
            target = request.return_to.uri or request.agent
            if not target:
                await hang_up_with(self.channel, self._headers(dialog), settings)
            elif settings.use_refer and await transfer_by_refer(
                self.channel, target, self._headers(dialog)
            ):
                how = "refer"
            else:
                call_id = new_call_id()
                await transfer_by_bridge(
                    self.channel, target, self._headers(call_id), settings, call_id
                )
                how = "bridge"
        self._write(
            self.app.store.set_state, self.session, SessionState.RETURNED, self.app.clock(), how=how
        )

    async def _close(self) -> None:
        if self.session is not None:
            self._write(
                self.app.store.append_event,
                SessionEvent.SESSION_CLOSED,
                self.session,
                self.app.clock(),
            )
        await self._drain()

    async def _refuse(self, session_id: str, reason: str) -> None:
        """No usable session: a short apology, then the call back with `failed`."""
        data = self.channel.channel_data
        language = data.get("variable_sip_h_X-Pay-Language", "")
        if language not in LANGUAGES:
            language = "en"
        speech = Speech(self.app.options.prompts_dir, language)
        headers = {
            "X-Pay-Result": "failed",
            "X-Pay-Reason": reason,
            "X-Pay-Timestamp": str(int(time.time())),
        }
        if session_id:
            headers["X-Pay-Session"] = session_id
        merchant = self.app.merchants.get(data.get("variable_sip_h_X-Pay-Merchant", ""))
        if merchant is not None:
            signed = {name.lower() for name in headers}
            headers["X-Pay-Signature"] = sign(
                merchant.signing_secret.encode(), headers, dialog_call_id(self.channel, ""), signed
            )
        try:
            await self.channel.execute("answer")
            for prompt in (PromptId.RESULT_FAILED, PromptId.GOODBYE):
                await self.channel.execute("playback", speech.prompt(prompt.value))
            await hang_up_with(self.channel, list(headers.items()), self.app.options.returns)
        except CallerGone:
            pass
