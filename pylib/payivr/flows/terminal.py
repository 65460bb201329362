"""A flow call in a terminal (`payivr flows simulate`): what the caller would hear
is printed, what they key is read line by line, comments and events are printed.

Key entries are read as by `payivr simulate` (payivr.commands.simulate.Keypad):
digits never echo on a terminal. In a queue an empty line means the agent answered
(then the call ends), ``timeout`` the queue's timeout, ``hangup`` the caller leaving.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TextIO

from payivr.commands.simulate import Keypad, MemoryStore, TerminalTelephone
from payivr.core.config_types import MerchantConfig
from payivr.core.flow import Flow
from payivr.core.flow.commands import CollectKeys, EnterQueue, Transfer
from payivr.core.flow.events import KeysEntered, NoInput, QueueLeft
from payivr.core.plan import Collect, Field
from payivr.core.prompts import load_prompts
from payivr.core.session import Session
from payivr.esl.channel import CallerGone
from payivr.execution.telephone import Telephone
from payivr.flows.context import FlowContext, FlowHooks


class TerminalFlowTelephone(TerminalTelephone):
    def __init__(self, flow: Flow, keypad: Keypad, out: TextIO) -> None:
        super().__init__({}, keypad, out)
        self.flow = flow
        self.gone = False

    @property
    def hungup(self) -> bool:  # type: ignore[override]
        return self.gone

    def payment_telephone(self, language: str) -> Telephone:
        return TerminalTelephone(load_prompts(language), self.keypad, self.out)

    async def play_prompt(self, flow: str, name: str, language: str) -> None:
        self.say(self.flow.prompts.get(name, {}).get(language, name))

    async def say_value(self, kind: str, value: str, language: str) -> None:
        self.say(" ".join(value) if kind == "digits" else value)

    async def speak(self, text: str, language: str) -> None:
        self.say(f"{text} (text-to-speech, {language})")

    async def collect_keys(self, command: CollectKeys) -> KeysEntered | NoInput:
        if command.prompt:
            await self.play_prompt(command.flow, command.prompt, command.language)
        self.out.write("[keys > ] ")
        self.out.flush()
        # The keypad reads an entry as for the capture plan's Collect (it uses only its
        # longest entry); the field named is immaterial here.
        entry = self.keypad.read(
            Collect(
                Field.CONFIRM,
                command.prompt or "",
                1,
                command.max_digits,
                command.timeout_ms,
                command.digit_timeout_ms,
            )
        )
        if not self.keypad.interactive:
            self.out.write("\n")
        if entry is None:
            self.gone = True
            self.note("caller hung up")
            raise CallerGone()
        keys = entry.digits.reveal() + (entry.terminator or "")
        entry.digits.wipe()
        return KeysEntered(keys) if keys else NoInput()

    async def enter_queue(self, command: EnterQueue) -> QueueLeft:
        chime = ""
        if command.chime is not None:
            chime = f" and prompt {command.chime.name} every {command.chime_every_s} s"
        self.note(
            f"waiting in queue {command.queue} with music {command.music}{chime}; "
            "Enter: an agent answers, 'timeout', or 'hangup'"
        )
        started = time.monotonic()
        line = (self.keypad.line() or "hangup").strip().lower()
        waited = round(time.monotonic() - started)
        if line in ("hangup", ""):
            self.gone = True
        if line == "timeout":
            return QueueLeft("timeout", waited, False)
        if line == "hangup":
            self.note("caller hung up while waiting")
            return QueueLeft("abandoned", waited, True)
        self.note("an agent answered; the call ends after the talk")
        return QueueLeft("answered", waited, True)

    async def hang_up(self) -> None:
        self.gone = True
        self.note("the flow hangs up")


class TerminalHooks(FlowHooks):
    def __init__(self, out: TextIO) -> None:
        self.out = out

    async def transfer(self, ctx: FlowContext, command: Transfer) -> None:
        headers = ", ".join(f"{k}: {v}" for k, v in command.headers) or "no headers"
        paid = " + the payment's X-Pay-* headers" if command.payment_headers else ""
        self.out.write(f"  (transferred to {command.uri} with {headers}{paid})\n")
        ctx.telephone.gone = True  # type: ignore[attr-defined]


class PrintedComments:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    async def enqueue(self, connector: str, ticket_id: str, body: str, *, call_id: str) -> str:
        self.out.write(f"  (comment for {connector} ticket {ticket_id}: {body})\n")
        return "printed"


class PrintedEvents:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    async def publish(self, name: str, fields: Mapping[str, str]) -> None:
        shown = {k: v for k, v in fields.items() if k not in ("flow", "entry", "call")}
        self.out.write(f"  (event {name} {shown})\n")


class MemorySessions(MemoryStore):
    """The simulated payment sessions (in memory, for the command's duration)."""

    async def create_session(self, session: Session, merchant: MerchantConfig, ttl_s: int) -> None:
        self.sessions[session.id] = session
