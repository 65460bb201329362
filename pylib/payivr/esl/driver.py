"""One payment call: session from Redis, the capture plan, the processor, the result,
the return of the call.

The plan (payivr.core.plan) decides; the one executor (payivr.execution) carries out
its commands, as for agent mode and `payivr simulate`. This driver adds what an ESL
payment call needs: the session from Redis, answering (and recording) the call, the
result's headers on the channel for the dialplan fallback, the return of the call,
and `session.closed`. A caller who hangs up at any point becomes one CallerHungUp for
the plan (the executor's rule); nothing about it is logged as an error.

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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from payivr.core.config import EslConfig, MerchantConfig
from payivr.core.plan import CapturePlan, FieldReport
from payivr.core.processor import Processor, ProcessorAnswer
from payivr.core.prompts import LANGUAGES, PromptId
from payivr.core.reasons import Reason
from payivr.core.result import Outcome, PaymentResult, build_result, result_headers
from payivr.core.session import Event as SessionEvent
from payivr.core.session import Session, SessionState, new_event_id
from payivr.core.signature import sign
from payivr.esl.channel import CallChannel, CallerGone
from payivr.esl.flow_call import FlowCall, FlowPorts
from payivr.esl.returning import (
    bye_variables,
    dialog_call_id,
    hang_up_with,
    new_call_id,
    transfer_by_bridge,
    transfer_by_refer,
)
from payivr.esl.telephone import EslTelephone, Listening, Speech
from payivr.execution.context import CallContext, DriverHooks
from payivr.execution.executor import Executor
from payivr.execution.metrics import PaymentMetrics
from payivr.execution.store import CallStore, with_retries
from payivr.store.async_store import AsyncSessionStore

log = logging.getLogger("payivr.esl")

SESSION_HEADER = "variable_sip_h_X-Payivr-Session"


@dataclass
class EslApplication:
    """Process-wide dependencies; `handle` is the OutboundServer's call handler."""

    store: AsyncSessionStore
    merchants: dict[str, MerchantConfig]
    processor_for: Callable[[str], Processor]
    options: EslConfig
    processor_pool: ThreadPoolExecutor
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    flows: FlowPorts | None = None  # flow calls (flows.entry_points); None: payments only
    # Calls in progress; beyond options.max_calls a call is refused at once (ivr-busy).
    active: int = field(default=0, init=False)
    listening: Listening | None = None  # spoken card data (docs/dictation.md)
    metrics: PaymentMetrics = field(default_factory=PaymentMetrics)

    async def warm_up(self, connections: int = 16) -> None:
        """Open the store's connections now, not on the first calls (latency spikes)."""
        ping = getattr(self.store, "ping", None)
        if ping is not None:
            await asyncio.gather(*(ping() for _ in range(connections)), return_exceptions=True)

    async def handle(self, channel: CallChannel) -> None:
        # Admission: a burst beyond what the process was sized for is returned at once
        # with a signed `failed` result, rather than slowing every call down until
        # Redis writes and prompts time out (docs/esl.md, Benchmark).
        if self.active >= self.options.max_calls:
            await PaymentCall(self, channel).refuse_busy()
            return
        self.active += 1
        try:
            await self._handle(channel)
        finally:
            self.active -= 1

    async def _handle(self, channel: CallChannel) -> None:
        # A call with a payivr session stays a payment call; one without may be a
        # flow call, by its entry point; anything else is refused as before.
        if self.flows is not None and not channel.channel_data.get(SESSION_HEADER, "").strip():
            entry = self.flows.entry_for(channel)
            if entry is not None:
                call = FlowCall(self.flows, channel, entry, prompts_dir=self.options.prompts_dir,
                                returns=self.options.returns)  # fmt: skip
                await call.run()
                return
        await PaymentCall(self, channel).run()


class PaymentCall(DriverHooks):
    """One ESL payment call: its session, its channel, and the hooks the executor
    calls at the driver's points."""

    def __init__(self, app: EslApplication, channel: CallChannel) -> None:
        self.app = app
        self.channel = channel
        self.ctx: CallContext | None = None
        self.telephone: EslTelephone | None = None

    async def run(self) -> None:
        session_id = self.channel.channel_data.get(SESSION_HEADER, "").strip()
        session = await with_retries(self.app.store.load, session_id) if session_id else None
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
        log.info(
            "call %s: session %s merchant %s order %s",
            self.channel.uuid,
            session.id,
            merchant.id,
            session.request.order,
        )
        speech = Speech(self.app.options.prompts_dir, session.request.language)
        listening = self.app.listening if session.request.input_mode.listens else None
        self.telephone = EslTelephone(self.channel, speech, listening)
        ctx = CallContext(
            label=self.channel.uuid,
            plan=CapturePlan(session.request, merchant, self.app.clock().date()),
            session=session,
            merchant=merchant,
            telephone=self.telephone,
            store=CallStore(self.app.store, self.channel.uuid),
            processor=self.app.processor_for(merchant.id),
            processor_timeout_s=merchant.processor.timeout_s,
            hooks=self,
            pool=self.app.processor_pool,
            clock=self.app.clock,
        )
        self.ctx = ctx
        await Executor().run(ctx)
        # The call is over for payivr (returned, or the caller left).
        ctx.store.later(
            self.app.store.append_event, SessionEvent.SESSION_CLOSED, ctx.session, ctx.clock()
        )
        await ctx.store.drain()

    # -- the driver's hooks ------------------------------------------------------------

    async def prepare(self, ctx: CallContext) -> None:
        data = self.channel.channel_data
        if data.get("variable_sensitive_dtmf") != "true":
            # The dialplan must set it before the socket (docs/esl.md); setting it here
            # protects this call's digits from now on, but the warning must be fixed.
            log.warning("call %s: dialplan did not set sensitive_dtmf=true", self.channel.uuid)
            await self.channel.set_variables({"sensitive_dtmf": "true"})
        await self.channel.execute("answer")
        if ctx.merchant.record_ivr_leg:
            path = self.app.options.recordings_dir / f"{ctx.session.id}.wav"
            await self.channel.execute("record_session", str(path))

    async def cleanup(self, ctx: CallContext) -> None:
        if self.telephone is not None:
            self.telephone.close()

    def reported(self, report: FieldReport) -> None:
        self.app.metrics.field(report)

    def settled(self, answer: ProcessorAnswer, seconds: float) -> None:
        self.app.metrics.processor(answer, seconds)

    async def recorded(self, ctx: CallContext, result: PaymentResult) -> None:
        self.app.metrics.result(result)
        if not self.channel.hungup:
            # For the dialplan fallback, should this process die before the return.
            with contextlib.suppress(CallerGone):
                headers = self._headers(
                    ctx.merchant.signing_secret.encode(),
                    ctx.session.request.call_id,
                    result,
                    dialog_call_id(self.channel, ""),
                )
                await self.channel.set_variables(bye_variables(headers))

    async def return_call(self, ctx: CallContext) -> None:
        result = ctx.result
        if result is None:
            raise RuntimeError("ReturnCall before Finish: the plan always records first")
        how = await self._return(ctx.session, ctx.merchant, result)
        ctx.store.later(
            self.app.store.set_state, ctx.session, SessionState.RETURNED, ctx.clock(), how=how
        )

    async def _return(
        self, session: Session, merchant: MerchantConfig, result: PaymentResult
    ) -> str:
        """Hang up or transfer the call with the result's headers; how it went back."""
        request = session.request
        settings = self.app.options.returns
        dialog = dialog_call_id(self.channel, request.call_id)
        secret = merchant.signing_secret.encode()
        if request.return_to.kind == "hangup":
            await hang_up_with(
                self.channel, self._headers(secret, request.call_id, result, dialog), settings
            )
            return "hangup"
        target = request.return_to.uri or request.agent
        if not target:
            await hang_up_with(
                self.channel, self._headers(secret, request.call_id, result, dialog), settings
            )
            return "hangup"
        if settings.use_refer and await transfer_by_refer(
            self.channel, target, self._headers(secret, request.call_id, result, dialog)
        ):
            return "refer"
        call_id = new_call_id()
        await transfer_by_bridge(
            self.channel,
            target,
            self._headers(secret, request.call_id, result, call_id),
            settings,
            call_id,
        )
        return "bridge"

    @staticmethod
    def _headers(
        secret: bytes, request_call_id: str, result: PaymentResult, call_id: str
    ) -> list[tuple[str, str]]:
        return result_headers(result, secret, call_id or request_call_id, int(time.time()))

    # -- over the limit ------------------------------------------------------------------

    async def refuse_busy(self) -> None:
        """The process has max_calls calls: this one goes back at once, no prompt, with
        `failed`/`ivr-busy`, recorded on its session (one callback) and signed."""
        session_id = self.channel.channel_data.get(SESSION_HEADER, "").strip()
        log.warning(
            "call %s: %d calls in progress (max_calls): returned as %s",
            self.channel.uuid,
            self.app.active,
            Reason.IVR_BUSY,
        )
        try:
            session = await with_retries(self.app.store.load, session_id) if session_id else None
            merchant = self.app.merchants.get(session.request.merchant) if session else None
            if session is None or merchant is None or session.state is not SessionState.CREATED:
                await self._refuse(session_id, Reason.IVR_BUSY, apologise=False)
                return
            now = self.app.clock()
            result = build_result(
                session.request,
                session_id=session.id,
                event_id=new_event_id(),
                created_at=session.created_at,
                completed_at=now,
                outcome=Outcome.failed(Reason.IVR_BUSY),
            )
            session = await with_retries(self.app.store.record_result, session, result, now)
            await self.channel.execute("answer")
            # First writer wins: a result already recorded for the session is the one.
            how = await self._return(session, merchant, session.result or result)
            await with_retries(
                self.app.store.set_state, session, SessionState.RETURNED, self.app.clock(), how=how
            )
        except CallerGone:
            pass

    # -- no usable session ---------------------------------------------------------------

    async def _refuse(self, session_id: str, reason: str, *, apologise: bool = True) -> None:
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
            for prompt in (PromptId.RESULT_FAILED, PromptId.GOODBYE) if apologise else ():
                await self.channel.execute("playback", speech.prompt(prompt.value))
            await hang_up_with(self.channel, list(headers.items()), self.app.options.returns)
        except CallerGone:
            pass
