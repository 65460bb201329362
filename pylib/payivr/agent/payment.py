"""One agent-started payment on a secure-trunk call: the capture plan, driven live.

The plan (payivr.core.plan) decides; the one executor (payivr.execution) carries out
its commands on the caller's leg, which stays bridged to the agent the whole time:
prompts are mixed into it and keys read from it without any application
(payivr.agent.bridged), so caller and agent keep talking. As for a transferred call: the
processor's timeout and late reversal, the wiping of card data on every abnormal
end, the caller's hang-up. This module adds what agent mode needs on top, as the
executor's hooks and a Telephone wrapper: the agent-leg guard (no DTMF, no tones),
live progress for the panel, the agent's restart and cancel, and the result to the
agent's leg. Prompts that end a call ("goodbye", "transferring you back") and
ReturnCall are skipped: the caller stays with the agent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor as ThreadPool
from datetime import datetime
from typing import Any

from payivr.agent.bridged import BridgedTelephone, KeyQueue
from payivr.agent.guard import AgentLegGuard
from payivr.agent.publisher import Publisher
from payivr.agent.settings import AgentSettings
from payivr.core.config import MerchantConfig
from payivr.core.plan import (
    CancelRequested,
    CapturePlan,
    Collect,
    Command,
    DigitsEntered,
    Event,
    Field,
    FieldReport,
    Play,
    ReturnCall,
    State,
)
from payivr.core.processor import Processor, ProcessorAnswer
from payivr.core.progress import ProgressTracker
from payivr.core.prompts import PromptId
from payivr.core.reasons import Reason
from payivr.core.result import PaymentResult, callback_body, result_headers
from payivr.core.secrets import SecretDigits
from payivr.core.session import Session
from payivr.esl.channel import CallChannel, CallerGone
from payivr.esl.telephone import Speech
from payivr.execution.context import CallContext, DriverHooks
from payivr.execution.executor import Executor
from payivr.execution.metrics import PaymentMetrics
from payivr.execution.store import CallStore, ThreadedStore
from payivr.media.masking import AgentMedia

log = logging.getLogger("payivr.agent")

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
    pool: ThreadPool | None = None  # processor threads (None: the loop's default pool)
    # Frees the call for the next payment once this one's result is recorded.
    release: Callable[[], Awaitable[None]] | None = None
    metrics: PaymentMetrics = dataclasses.field(default_factory=PaymentMetrics)
    # rtpengine in the agent leg's media path (None: FreeSWITCH mutes instead).
    media: AgentMedia | None = None
    agent_call_id: str = ""  # the agent leg's SIP Call-ID, rtpengine's key
    guided: bool = False  # the merchant's agent-guided style: the caller hears no prompt
    # The caller's keys, read on the running bridge (payivr.agent.keys).
    keys: KeyQueue = dataclasses.field(default_factory=KeyQueue)


class AgentTelephone(BridgedTelephone):
    """The caller's leg, with the agent's restart and cancel breaking in."""

    def __init__(
        self, channel: CallChannel, speech: Speech, keys: KeyQueue, guided: bool = False
    ) -> None:
        super().__init__(channel, speech, keys, guided=guided)
        self.interrupt: str | None = None  # "restart" or "cancel", set by control()
        self.collecting: Field | None = None

    async def play(self, prompt: str) -> None:
        if self.interrupt != "cancel":  # the agent cancelled: nothing more is said
            await super().play(prompt)

    async def collect(self, command: Collect) -> Event:
        if self.interrupt == "cancel":
            self.interrupt = None
            return CancelRequested(Reason.CANCELLED_BY_AGENT)
        self.collecting = command.field
        try:
            event = await super().collect(command)
        finally:
            self.collecting = None
        interrupt, self.interrupt = self.interrupt, None
        if interrupt is None:
            return event
        # The agent interrupted this field: whatever was keyed is wiped unread.
        if isinstance(event, DigitsEntered):
            event.digits.wipe()
        if interrupt == "cancel":
            return CancelRequested(Reason.CANCELLED_BY_AGENT)
        return DigitsEntered(command.field, SecretDigits(""), "*")


class AgentPayment(DriverHooks):
    """Runs one payment to its recorded result. `control()` takes restart/cancel."""

    def __init__(self, ctx: PaymentContext, session: Session) -> None:
        self.pctx = ctx
        self.session = session
        self.tracker = ProgressTracker(session.id)
        self.plan = CapturePlan(session.request, ctx.merchant, ctx.now().date())
        self.telephone = AgentTelephone(
            ctx.channel,
            Speech(ctx.speech_dir, session.request.language),
            ctx.keys,
            guided=ctx.guided,
        )
        self.guard = AgentLegGuard(
            ctx.channel, ctx.agent_uuid, ctx.settings, ctx.media, ctx.agent_call_id
        )
        self.result: PaymentResult | None = None

    @property
    def id(self) -> str:
        return self.session.id

    @property
    def collecting(self) -> Field | None:
        return self.telephone.collecting

    # -- the agent's controls ----------------------------------------------------------

    async def control(self, command: str, field: str | None = None) -> None:
        """Restart the open field, or cancel: interrupt what the caller hears now."""
        publisher = self.pctx.publisher
        if self.plan.finished or self.plan.state is State.PROCESSING:
            publisher.put(
                self.tracker.notice(f"{command}-refused", "the payment is already processing")
            )
            return
        if command == "restart" and (
            field is None or self.collecting is None or self.collecting.value != field
        ):
            publisher.put(self.tracker.notice("restart-refused", f"{field} is not open for input"))
            return
        self.telephone.interrupt = command
        # Ends the prompt or the field running now; what was keyed so far is wiped unread.
        await self.telephone.break_in()

    def key_pressed(self, is_digit: bool) -> None:
        event = self.tracker.key_pressed(is_digit)
        if event is not None:
            self.pctx.publisher.put(event)

    # -- the run ---------------------------------------------------------------------

    async def run(self) -> PaymentResult | None:
        request = self.session.request
        self.pctx.publisher.put(
            self.tracker.started(str(request.operation), request.amount, request.currency)
        )
        merchant = self.pctx.merchant
        ctx = CallContext(
            label=self.pctx.channel.uuid,
            plan=self.plan,
            session=self.session,
            merchant=merchant,
            telephone=self.telephone,
            store=CallStore(ThreadedStore(self.pctx.store), self.pctx.channel.uuid),
            processor=self.pctx.processor,
            processor_timeout_s=merchant.processor.timeout_s,
            hooks=self,
            pool=self.pctx.pool,
            clock=self.pctx.now,
        )
        try:
            await Executor().run(ctx)
        finally:
            self.session = ctx.session
            await ctx.store.drain()
        return self.result

    # -- the executor's hooks ------------------------------------------------------------

    def skips(self, command: Command) -> bool:
        # The caller stays with the agent: no goodbye, no return of the call.
        return isinstance(command, ReturnCall) or (
            isinstance(command, Play) and command.prompt in CALL_ENDING_PROMPTS
        )

    async def prepare(self, ctx: CallContext) -> None:
        self.pctx.keys.flush()  # nothing keyed before this payment counts
        await self.guard.on()

    def started(self, command: Command) -> None:
        for event in self.tracker.commands([command]):
            self.pctx.publisher.put(event)

    def reported(self, report: FieldReport) -> None:
        self.pctx.metrics.field(report)
        for progress in self.tracker.report(report):
            self.pctx.publisher.put(progress)

    def settled(self, answer: ProcessorAnswer, seconds: float) -> None:
        self.pctx.metrics.processor(answer, seconds)

    async def recorded(self, ctx: CallContext, result: PaymentResult) -> None:
        self.result = result
        self.pctx.metrics.result(result)
        # The card span is over: the agent's leg gets DTMF and audio back before the
        # agent sees the result (and can start the next payment).
        with contextlib.suppress(CallerGone):
            await self.guard.off()
        if self.pctx.settings.result_info:
            with contextlib.suppress(CallerGone):
                await self._info_to_agent(result, int(ctx.clock().timestamp()))
        if self.pctx.release is not None:
            # Before the panel hears of the result, so the agent can start the next
            # payment at once (it runs when this one has said its result).
            try:
                await self.pctx.release()
            except Exception as exc:  # the claim then expires with the call's TTL
                log.warning("call %s: releasing the payment failed: %s", ctx.label,
                            type(exc).__name__)  # fmt: skip
        self.pctx.publisher.put(self.tracker.finished(result))

    async def cleanup(self, ctx: CallContext) -> None:
        with contextlib.suppress(CallerGone):
            await self.guard.off()
        self.pctx.keys.flush()

    async def _info_to_agent(self, result: PaymentResult, now: int) -> None:
        """The result as a SIP INFO on the agent's leg: signed X-Pay-* headers, JSON body."""
        secret = self.pctx.merchant.signing_secret.encode()
        headers = result_headers(result, secret, self.pctx.call_id, now)
        names = [f"sip_info_h_{name}" for name, _ in headers]
        agent = self.pctx.agent_uuid
        channel = self.pctx.channel
        pairs = ";".join(f"sip_info_h_{name}={value}" for name, value in headers)
        reply = await channel.api(
            f"uuid_setvar_multi {agent} fs_send_unsupported_info=true;{pairs}"
        )
        if not reply.startswith("+OK"):
            return  # the agent's leg is gone
        body = callback_body(result).decode("utf-8").replace(" ", "")
        kind, sub = RESULT_CONTENT_TYPE
        await channel.api(f"uuid_send_info {agent} {kind} {sub} {body}")
        await channel.api(f"uuid_setvar_multi {agent} " + ";".join(f"{n}=" for n in names))
