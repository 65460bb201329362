"""One flow call: the entry point's flow, run by the one executor on this channel.

The ESL application sends a call here when it carries no payivr session header and
its entry point (the number dialled, or a trunk header) names a flow
(``flows.entry_points``). The flow engine decides; ``Executor(FLOW_REGISTRY)``
carries its commands out with this channel as the telephone (payivr.esl.
flow_telephone) and the ports of ``FlowPorts``: connector requests in threads,
the comment outbox, flow events, and ``pay`` through the capture plan.

A call whose entry point has no flow is refused the way a payment call without a
session is (payivr.esl.driver).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from payivr.core.config import MerchantConfig, ReturnSettings
from payivr.core.flow import CallInfo, FlowEngine
from payivr.core.flow.commands import Transfer
from payivr.core.flow.settings import EntryPoint, FlowsConfig
from payivr.core.result import result_headers
from payivr.esl.channel import CallChannel
from payivr.esl.flow_telephone import EslFlowTelephone
from payivr.esl.returning import (
    dialog_call_id,
    new_call_id,
    transfer_by_bridge,
    transfer_by_refer,
)
from payivr.esl.telephone import Speech
from payivr.execution.executor import Executor
from payivr.execution.registry import FLOW_REGISTRY
from payivr.flows.context import Comments, Connectors, FlowContext, FlowEvents, FlowHooks, Payments
from payivr.flows.speech import TtsCache

log = logging.getLogger("payivr.esl")

DIALLED = ("variable_sip_req_user", "Caller-Destination-Number", "variable_destination_number")
CALLER = ("Caller-Caller-ID-Number", "variable_sip_from_user")
HEADER_PREFIX = "variable_sip_h_"


@dataclass
class FlowPorts:
    """Process-wide dependencies of flow calls (built once, by esl.service)."""

    flows: FlowsConfig
    connectors: Connectors
    comments: Comments
    events: FlowEvents
    payments: Payments
    tts: TtsCache
    merchants: dict[str, MerchantConfig]

    def entry_for(self, channel: CallChannel) -> EntryPoint | None:
        data = channel.channel_data
        headers = {
            name[len(HEADER_PREFIX) :].lower(): value
            for name, value in data.items()
            if name.startswith(HEADER_PREFIX)
        }
        return self.flows.entry_for(_first(data, DIALLED), headers)


class FlowCall(FlowHooks):
    """One ESL flow call and the hooks the executor calls at the driver's points."""

    def __init__(
        self,
        ports: FlowPorts,
        channel: CallChannel,
        entry: EntryPoint,
        *,
        prompts_dir: Path,
        returns: ReturnSettings,
    ) -> None:
        self.ports = ports
        self.channel = channel
        self.entry = entry
        self.prompts_dir = prompts_dir
        self.returns = returns

    async def run(self) -> None:
        data = self.channel.channel_data
        flow = self.ports.flows.flows[self.entry.flow]
        call = CallInfo(
            ani=_first(data, CALLER),
            dnis=_first(data, DIALLED),
            entry=self.entry.name,
            call_id=dialog_call_id(self.channel, self.channel.uuid),
            language=self.entry.language,
        )
        log.info("call %s: entry %s flow %s", self.channel.uuid, self.entry.name, flow.name)
        engine = FlowEngine(flow, call)
        speech = Speech(self.prompts_dir, engine.env.language)
        ctx = FlowContext(
            label=self.channel.uuid,
            plan=engine,
            telephone=EslFlowTelephone(self.channel, speech, self.ports.tts),
            connectors=self.ports.connectors,
            comments=self.ports.comments,
            events=self.ports.events,
            payments=self.ports.payments,
            hooks=self,
        )
        await Executor(FLOW_REGISTRY).run(ctx)

    async def prepare(self, ctx: FlowContext) -> None:
        if self.channel.channel_data.get("variable_sensitive_dtmf") != "true":
            # A flow may take a payment or a PIN: the dialplan sets it before the
            # socket (docs/esl.md); set here too, and warn, as for payment calls.
            log.warning("call %s: dialplan did not set sensitive_dtmf=true", self.channel.uuid)
            await self.channel.set_variables({"sensitive_dtmf": "true"})
        await self.channel.execute("answer")

    async def transfer(self, ctx: FlowContext, command: Transfer) -> None:
        headers = list(command.headers)
        dialog = dialog_call_id(self.channel, "")
        if command.payment_headers and ctx.payment is not None:
            merchant = self.ports.merchants[ctx.payment_merchant]
            secret = merchant.signing_secret.encode()
            if self.returns.use_refer:
                signed = result_headers(ctx.payment, secret, dialog, int(time.time()))
                if await transfer_by_refer(self.channel, command.uri, [*headers, *signed]):
                    return
            call_id = new_call_id()
            signed = result_headers(ctx.payment, secret, call_id, int(time.time()))
            await transfer_by_bridge(
                self.channel, command.uri, [*headers, *signed], self.returns, call_id
            )
            return
        if self.returns.use_refer and await transfer_by_refer(self.channel, command.uri, headers):
            return
        await transfer_by_bridge(self.channel, command.uri, headers, self.returns, new_call_id())


def _first(data: Mapping[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        value = data.get(name)
        if value:
            return str(value)
    return ""
