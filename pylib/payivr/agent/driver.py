"""The agent-mode call handler: one per secure-trunk call, for the whole call.

FreeSWITCH hands a secure-trunk call (routed through payivr by the contact center,
docs/agent-assisted.md) to this outbound socket. The handler:

1. registers the call in Redis so the agent's desktop can find it (by SIP Call-ID,
   the `X-Pay-Call-Ref` header, or the agent's extension);
2. bridges the caller to the agent (`bridge`, with a pre-chosen `origination_uuid` so
   the agent's leg can be addressed), which anchors the media in FreeSWITCH; with
   rtpengine configured the agent's leg goes through Kamailio (`fs_path`, marked
   `X-Payivr-Leg: agent`, with a Call-ID payivr chose), which puts its media
   through rtpengine, where payivr masks the card tones (payivr.media.masking);
3. waits for the API's commands on the call's Redis stream: `start` runs an
   AgentPayment (payivr.agent.payment), `restart` / `cancel` go to the running one;
4. when either side hangs up, marks the call ended.

Payments run one at a time; after one ends the agent can start another on the same
call. The bridge is never torn down for a payment.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from payivr.agent.bridged import KeyQueue
from payivr.agent.bus import AgentBus, CallInfo
from payivr.agent.keys import divert_keys
from payivr.agent.payment import AgentPayment, PaymentContext
from payivr.agent.publisher import Publisher
from payivr.agent.settings import AgentSettings
from payivr.core.config import Config
from payivr.core.processor import Processor
from payivr.core.result import iso
from payivr.core.secrets import SecretDigits
from payivr.core.siputil import parse_sip_uri
from payivr.esl.channel import CallerGone
from payivr.esl.connection import EslConnection
from payivr.execution.metrics import PaymentMetrics
from payivr.media.masking import AgentMedia
from payivr.media.sdp import AGENT_LEG_HEADER

log = logging.getLogger("payivr.agent")

# Where the contact center's agent is: set by the secure-trunk dialplan (from the
# request URI) or sent by the CC as X-Pay-Agent.
TARGET_VARIABLES = ("variable_payivr_agent_target", "variable_sip_h_X-Pay-Agent")
REF_VARIABLE = "variable_sip_h_X-Pay-Call-Ref"
MERCHANT_VARIABLE = "variable_sip_h_X-Pay-Merchant"
SESSION_VARIABLE = "variable_sip_h_X-Payivr-Session"


@dataclass
class AgentDeps:
    """Process-wide things every call handler uses (built once by the service)."""

    config: Config
    settings: AgentSettings
    bus: AgentBus
    store: Any  # RedisSessionStore (synchronous; used through threads)
    processor_for: Callable[[str], Processor]
    prompts_dir: Path
    sofia_profile: str = "payivr"
    # rtpengine in the agent leg's media path, and Kamailio's URI to route it there.
    media: AgentMedia | None = None
    media_proxy: str | None = None
    command_block_ms: int = 1000
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    metrics: PaymentMetrics = field(default_factory=PaymentMetrics)


class AgentCall:
    def __init__(self, conn: EslConnection, deps: AgentDeps) -> None:
        self.conn = conn
        self.deps = deps
        self.agent_uuid = str(uuidlib.uuid4())
        self.agent_call_id = f"{uuidlib.uuid4()}@payivr-agent"
        self.info: CallInfo | None = None
        self.payment: AgentPayment | None = None
        self.payment_task: asyncio.Task[None] | None = None
        self.publisher = Publisher(deps.bus, conn.uuid)
        self.keys = KeyQueue()  # the caller's keys during a payment (payivr.agent.keys)

    async def run(self) -> None:
        data = self.conn.channel_data
        merchant_id = data.get(MERCHANT_VARIABLE, "")
        merchant = self.deps.config.merchant(merchant_id)
        target = next((data[v] for v in TARGET_VARIABLES if data.get(v)), "")
        parsed = parse_sip_uri(target) if target else None
        problem = None
        if merchant is None:
            problem = "unknown merchant"
        elif parsed is None or not merchant.return_host_allowed(parsed.hostname):
            problem = "agent target missing or not in the merchant's return allowlist"
        else:
            problem = await self._check_trunk_session(merchant.id)
        if problem is not None or merchant is None or parsed is None:
            # Refused before anything runs: `exit` hands the call back to the dialplan.
            log.warning("agent call %s refused: %s", self.conn.uuid, problem)
            return
        self.info = CallInfo(
            call=self.conn.uuid,
            merchant=merchant.id,
            call_id=data.get("variable_sip_call_id", ""),
            ref=data.get(REF_VARIABLE, ""),
            agent=parsed.user or "",
            state="bridging",
            started_at=iso(self.deps.now()),
        )
        await self.deps.bus.register_call(self.info)
        self.publisher.start()
        tasks: list[asyncio.Task[None]] = []
        try:
            await divert_keys(self.conn, self._key)
            bridge = asyncio.create_task(self._bridge(str(parsed)), name="agent-bridge")
            commands = asyncio.create_task(self._commands(), name="agent-commands")
            hangup = asyncio.create_task(self.conn.wait_hangup(), name="agent-hangup")
            tasks = [bridge, commands, hangup]
            await asyncio.wait({bridge, hangup}, return_when=asyncio.FIRST_COMPLETED)
            commands.cancel()
            if self.payment_task is not None:
                # The payment sees CallerGone and records its end (caller-hangup).
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(self.payment_task, 30)
            with contextlib.suppress(CallerGone):
                await self.conn.hangup()
        finally:
            # Also on cancellation (service stopping): nothing of this call outlives it.
            if self.payment_task is not None:
                tasks.append(self.payment_task)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            await self.publisher.close()
            with contextlib.suppress(Exception):
                await self.deps.bus.end_call(self.info)

    async def _check_trunk_session(self, merchant_id: str) -> str | None:
        """The call must come through Kamailio's admission for this merchant."""
        session_id = self.conn.channel_data.get(SESSION_VARIABLE, "")
        if not session_id:
            return "no X-Payivr-Session" if self.deps.settings.require_session else None
        owner = await self.deps.bus.trunk_session_merchant(session_id)
        if owner is None:
            return "X-Payivr-Session is not a known session"
        if owner != merchant_id:
            return "X-Payivr-Session belongs to another merchant"
        return None

    async def _bridge(self, target: str) -> None:
        """Caller <-> agent, for the whole call (FreeSWITCH anchors the media)."""
        await self.conn.set_variables({"hangup_after_bridge": "true"})
        dial = agent_dial_string(
            target,
            self.agent_uuid,
            self.deps.sofia_profile,
            self.deps.media_proxy if self.deps.media is not None else None,
            self.agent_call_id,
        )
        info = self._info()
        await self.deps.bus.update_call(info.call, state="connected")
        with contextlib.suppress(CallerGone):
            # No event-lock: with it FreeSWITCH holds every payment application sent
            # during the bridge until the bridge ends (seen with FreeSWITCH 1.10.12:
            # the first prompt of a payment never played).
            await self.conn.execute("bridge", dial, event_lock=False)

    def _info(self) -> CallInfo:
        if self.info is None:
            raise RuntimeError("the call is not registered yet")
        return self.info

    async def _commands(self) -> None:
        info = self._info()
        last = "0"
        while not self.conn.hungup:
            try:
                entries = await self.deps.bus.read_commands(
                    info.call, last, self.deps.command_block_ms
                )
            except Exception as exc:  # Redis restarting: keep the call, retry soon
                log.warning("call %s: reading commands failed: %s", info.call, exc)
                await asyncio.sleep(1)
                continue
            for entry_id, command in entries:
                last = entry_id
                await self._on_command(command)

    async def _on_command(self, command: dict[str, str]) -> None:
        name, payment_id = command.get("command"), command.get("payment", "")
        if name == "start":
            # A payment whose result is recorded has released the call's claim while
            # the caller still hears that result: the next one starts after it.
            previous = self.payment_task
            self.payment_task = asyncio.create_task(self._run_payment(payment_id, previous))
        elif (
            name in ("restart", "cancel")
            and self.payment is not None
            and self.payment.id == payment_id
        ):
            await self.payment.control(name, command.get("field"))

    async def _run_payment(
        self, payment_id: str, previous: asyncio.Task[None] | None = None
    ) -> None:
        info = self._info()
        deps = self.deps
        if previous is not None:
            with contextlib.suppress(BaseException):
                await previous
        try:
            session = await asyncio.to_thread(deps.store.load, payment_id)
            merchant = deps.config.merchant(info.merchant)
            if session is None or merchant is None or session.request.merchant != merchant.id:
                log.warning("call %s: payment %s not found", info.call, payment_id)
                return
            ctx = PaymentContext(
                channel=self.conn,
                agent_uuid=self.agent_uuid,
                call_id=info.call_id or info.call,
                merchant=merchant,
                settings=deps.settings,
                store=deps.store,
                processor=deps.processor_for(merchant.id),
                speech_dir=deps.prompts_dir,
                publisher=self.publisher,
                now=deps.now,
                metrics=deps.metrics,
                release=functools.partial(deps.bus.release_payment, info.call, payment_id),
                media=deps.media,
                agent_call_id=self.agent_call_id,
                guided=merchant.id in deps.settings.guided_merchants,
                keys=self.keys,
            )
            self.payment = AgentPayment(ctx, session)
            await deps.bus.update_call(info.call, state="capturing", payment=payment_id)
            await self.payment.run()
        except CallerGone:
            pass
        except Exception:
            log.exception("call %s: payment %s failed", info.call, payment_id)
            if self.payment is not None and self.payment.result is None:
                # The panel must not wait forever: say the payment broke off.
                self.publisher.put(
                    self.payment.tracker.notice("internal-error", "the payment stopped: see logs")
                )
        finally:
            await self.publisher.drain()
            self.payment = None
            with contextlib.suppress(Exception):
                await deps.bus.release_payment(info.call, payment_id)
                if not self.conn.hungup:
                    await deps.bus.update_call(info.call, state="connected")

    def _key(self, key: SecretDigits) -> None:
        """One caller key from the digit machine: to the running payment, else wiped."""
        if self.payment is None:
            key.wipe()
            return
        if self.deps.settings.live_digit_count:
            self.payment.key_pressed(key.is_digits())
        self.keys.put(key)


def agent_dial_string(
    target: str, agent_uuid: str, profile: str, media_proxy: str | None, call_id: str
) -> str:
    """The agent leg's dial string; through Kamailio and rtpengine when `media_proxy`.

    `sip_invite_call_id` sets the INVITE's Call-ID (mod_sofia sofia_glue.c), the key
    payivr names the call by in rtpengine; `X-Payivr-Leg: agent` tells Kamailio to
    put the media through rtpengine (it removes the header); `fs_path` sends the
    INVITE to Kamailio whatever the target's host.
    """
    variables = f"origination_uuid={agent_uuid},fs_send_unsupported_info=true"
    if media_proxy is None:
        return f"{{{variables}}}sofia/{profile}/{target}"
    variables += f",sip_invite_call_id={call_id},sip_h_{AGENT_LEG_HEADER}=agent"
    return f"{{{variables}}}sofia/{profile}/{target};fs_path={media_proxy}"


def call_handler(deps: AgentDeps) -> Callable[[EslConnection], Any]:
    """The OutboundServer handler for agent-mode calls."""

    async def handle(conn: EslConnection) -> None:
        await AgentCall(conn, deps).run()

    return handle
