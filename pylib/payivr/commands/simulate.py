"""`payivr simulate`: play the capture plan in a terminal against the sandbox processor.

The same plan the ESL application drives, with the terminal as the telephone: prompts
are printed in the request's language, keys are read per field, the sandbox answers.
Keyed digits are never echoed in clear: on a terminal each digit shows as ``*``; when
stdin is not a terminal (scripts, tests) lines are read and nothing is echoed.

Keys, one entry per line (or per keypress on a terminal): digits, then optionally
``#`` (end early) or ``*`` (start the field again). An empty line is "no input" (the
field timed out); end of input (Ctrl-D) or a line ``hangup`` hangs up.

Exit status: 0 approved, 1 any other result, 2 bad arguments or config.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import secrets
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from payivr.commands import load_or_report
from payivr.core.config import MerchantConfig
from payivr.core.currency import format_amount
from payivr.core.errors import Rejection
from payivr.core.plan import (
    CapturePlan,
    Collect,
    Command,
    DigitsEntered,
    Event,
    InputTimeout,
    ProcessPayment,
)
from payivr.core.processor import Operation, Processor, ResultCode
from payivr.core.prompts import PromptCatalogueError, load_prompts
from payivr.core.reasons import Reason
from payivr.core.request import PaymentRequest, parse_request
from payivr.core.result import Outcome, PaymentResult
from payivr.core.sandbox import SandboxProcessor
from payivr.core.secrets import SecretDigits
from payivr.core.session import Event as SessionEvent
from payivr.core.session import Session, SessionState
from payivr.esl.channel import CallerGone
from payivr.execution.context import CallContext, DriverHooks
from payivr.execution.executor import Executor
from payivr.execution.store import CallStore
from payivr.store.async_store import AsyncSessionStore

KEYPAD = frozenset("0123456789#*")
HANGUP = "hangup"


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="run the capture plan in this terminal against the sandbox processor",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, help="the payivr YAML config")
    p.add_argument("--merchant", help="merchant id (default: the only one in the config)")
    p.add_argument("--operation", default="sale", choices=[o.value for o in Operation])
    p.add_argument("--amount", help="minor units, e.g. 1250 = 12.50 (not for tokenize)")
    p.add_argument("--currency", help="ISO 4217 code (default: the merchant's)")
    p.add_argument("--order", help="order id (default: SIM<unix time>)")
    p.add_argument("--token", help="token to charge (token_sale) or reference to file under")
    p.add_argument("--language", help="es, en, pt, nl (default: the merchant's)")
    p.add_argument("--return", dest="return_", help="hangup, agent or a sip: URI")
    p.add_argument("--agent", help="agent URI, for --return agent")
    p.add_argument("--today", type=datetime.date.fromisoformat, help="date for expiry checks")
    p.add_argument(
        "--processor-timeout",
        type=float,
        help="seconds the sandbox's timeout card waits (default: the merchant's timeout_s)",
    )
    p.set_defaults(handler=simulate)


def simulate(args: argparse.Namespace) -> int:
    """The `payivr simulate` handler."""
    out = sys.stdout
    config = load_or_report(args.config, prefix="payivr simulate: ")
    if config is None:
        return 2
    merchant_id = args.merchant or (
        next(iter(config.merchants)) if len(config.merchants) == 1 else None
    )
    merchant = config.merchant(merchant_id) if merchant_id else None
    if merchant is None:
        known = ", ".join(sorted(config.merchants))
        print(f"payivr simulate: --merchant is one of: {known}", file=sys.stderr)
        return 2
    order = args.order or f"SIM{int(time.time())}"
    try:
        request = parse_request(
            _fields(args, merchant, order), merchant, call_id=f"simulate-{order}"
        )
        texts = load_prompts(request.language)
    except (Rejection, PromptCatalogueError) as exc:
        print(f"payivr simulate: {exc}", file=sys.stderr)
        return 2
    timeout_s = args.processor_timeout
    if timeout_s is None:
        timeout_s = merchant.processor.timeout_s
    plan = CapturePlan(request, merchant, args.today or datetime.date.today())
    keypad = Keypad(sys.stdin, out)
    simulator = Simulator(plan, request, texts, keypad, out, timeout_s, sandbox_for(merchant))
    with keypad.session():
        outcome = simulator.run()
    return 0 if outcome.code is ResultCode.APPROVED else 1


def sandbox_for(merchant: MerchantConfig) -> SandboxProcessor:
    """The sandbox, with the merchant's token key when its processor is the sandbox;
    otherwise with a key of this run only (its tokens are good for this run only)."""
    from payivr.processors import sandbox_token_key

    if merchant.processor.type == "sandbox":
        return SandboxProcessor(sandbox_token_key(merchant))
    return SandboxProcessor(secrets.token_bytes(32))


def _fields(args: argparse.Namespace, merchant: MerchantConfig, order: str) -> dict[str, str]:
    """The request as the X-Pay-* fields a CTI would send, validated like a real one."""
    fields = {
        "x-pay-merchant": merchant.id,
        "x-pay-operation": args.operation,
        "x-pay-order": order,
    }
    optional = {
        "x-pay-amount": args.amount,
        "x-pay-currency": args.currency,
        "x-pay-token": args.token,
        "x-pay-language": args.language,
        "x-pay-return": args.return_,
        "x-pay-agent": args.agent,
    }
    if args.amount is None and args.operation != Operation.TOKENIZE.value:
        optional["x-pay-amount"] = "1250"
    fields.update({k: v for k, v in optional.items() if v})
    return fields


@dataclass(frozen=True)
class Entry:
    """What was keyed for one Collect: digits and the key that ended them."""

    digits: SecretDigits
    terminator: str | None


class Keypad:
    """Reads DTMF-like entries from stdin without ever echoing a digit in clear."""

    def __init__(self, stdin: TextIO, out: TextIO) -> None:
        self._in = stdin
        self._out = out

    @property
    def interactive(self) -> bool:
        """A terminal: read key by key and show ``*`` per digit."""
        return self._in.isatty()

    def read(self, collect: Collect) -> Entry | None:
        """One entry for ``collect``; None means the caller hung up."""
        if self.interactive:
            return self._read_keys(collect.max_digits)
        line = self._in.readline()
        if not line or line.strip().lower() == HANGUP:
            return None
        return _parse_line(line, collect.max_digits)

    def line(self) -> str | None:
        """One whole line (a flow's queue: Enter, ``timeout``, ``hangup``); None at
        the end of input. Not for digits: it echoes what is typed."""
        text = self._in.readline()
        return text if text else None

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Keys one at a time and no terminal echo for the whole call.

        Set once, before the first prompt, so keys typed ahead of a prompt are not
        echoed in clear by the terminal either. Restored on the way out.
        """
        if not self.interactive:
            yield
            return
        import termios
        import tty

        fd = self._in.fileno()
        saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            attrs = termios.tcgetattr(fd)
            attrs[3] &= ~termios.ECHO
            termios.tcsetattr(fd, termios.TCSADRAIN, attrs)
            yield
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    def _read_keys(self, max_digits: int) -> Entry | None:
        keys = bytearray()
        try:
            while True:
                char = self._in.read(1)
                if char in ("", "\x04"):  # end of input / Ctrl-D
                    return None
                if char in "\r\n":
                    self._out.write("\n")
                    return Entry(SecretDigits(keys), None)
                if char in "#*":
                    self._out.write(char + "\n")
                    return Entry(SecretDigits(keys), char)
                if char.isdigit() and char.isascii():
                    keys.append(ord(char))
                    self._out.write("*")
                    self._out.flush()
                    if len(keys) >= max_digits:
                        self._out.write("\n")
                        return Entry(SecretDigits(keys), None)
        except KeyboardInterrupt:
            return None
        finally:
            for i in range(len(keys)):
                keys[i] = 0


def _parse_line(line: str, max_digits: int) -> Entry:
    """``"4111 1111 1111 1111#"`` -> digits and terminator, as a phone would send them.

    Spaces and other characters are not keypad keys and are dropped; keys after the
    terminator or past ``max_digits`` are dropped too (the phone would have stopped).
    """
    keys = bytearray()
    terminator: str | None = None
    for char in line:
        if char not in KEYPAD:
            continue
        if char in "#*":
            terminator = char
            break
        keys.append(ord(char))
        if len(keys) >= max_digits:
            break
    entry = Entry(SecretDigits(keys), terminator)
    for i in range(len(keys)):
        keys[i] = 0
    return entry


class TerminalTelephone:
    """The executor's Telephone on a terminal: prompts printed, keys read per field.

    The terminal never hangs up by itself: the caller's hang-up is an end of input
    (or a ``hangup`` line) while a field is read, and comes as CallerGone from there.
    """

    uuid = "simulate"
    hungup = False
    media_lost = False

    def __init__(self, texts: dict[str, str], keypad: Keypad, out: TextIO) -> None:
        self.texts = texts
        self.keypad = keypad
        self.out = out

    async def play(self, prompt: str) -> None:
        self.say(self.texts[prompt])

    async def say_amount(self, amount: int, currency: str) -> None:
        self.say(format_amount(amount, currency))

    async def say_digits(self, text: str) -> None:
        self.say(" ".join(text))

    async def mask_recording(self) -> None:
        self.note("recording masked")

    async def unmask_recording(self) -> None:
        self.note("recording unmasked")

    async def collect(self, command: Collect) -> Event:
        self.say(self.texts[command.prompt])
        self.out.write(f"[{command.field} > ] ")
        self.out.flush()
        # Read in the event loop's thread on purpose: the terminal is the caller, the
        # call waits for it, and Ctrl-C must reach this read (main thread only).
        entry = self.keypad.read(command)
        if not self.keypad.interactive:
            self.out.write("\n")
        if entry is None:
            self.note("caller hung up")
            raise CallerGone()
        if len(entry.digits) == 0 and entry.terminator is None:
            return InputTimeout(command.field)
        return DigitsEntered(command.field, entry.digits, entry.terminator)

    def say(self, text: str) -> None:
        self.out.write(f"IVR: {text}\n")

    def note(self, text: str) -> None:
        self.out.write(f"  ({text})\n")
        self.out.flush()


class MemoryStore:
    """The session store of a simulated call: it lives as long as the command."""

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.annotations: dict[str, dict[str, str]] = {}

    async def load(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    async def set_state(
        self, session: Session, state: SessionState, now: datetime.datetime, **extra: str
    ) -> Session:
        updated = session.with_state(state, now)
        self.sessions[session.id] = updated
        return updated

    async def record_result(
        self,
        session: Session,
        result: PaymentResult,
        now: datetime.datetime,
        annotations: Mapping[str, str] | None = None,
    ) -> Session:
        done = dataclasses.replace(session, state=SessionState.DONE, result=result, updated_at=now)
        self.sessions[session.id] = done
        self.annotations.setdefault(session.id, {}).update(annotations or {})
        return done

    async def annotate(self, session_id: str, **fields: str) -> bool:
        self.annotations.setdefault(session_id, {}).update(fields)
        return session_id in self.sessions

    async def append_event(
        self, name: SessionEvent, session: Session, now: datetime.datetime, **fields: str
    ) -> None:
        return None  # the terminal shows what happens; nothing else reads events here


class Simulator(DriverHooks):
    """Runs one CapturePlan through the executor with the terminal as the telephone."""

    def __init__(
        self,
        plan: CapturePlan,
        request: PaymentRequest,
        texts: dict[str, str],
        keypad: Keypad,
        out: TextIO,
        timeout_s: float,
        processor: Processor,
        *,
        session: Session | None = None,
        store: AsyncSessionStore | None = None,
    ) -> None:
        """``session`` and ``store``: a stored session to drive (``payivr demo``);
        by default a session that lives in memory for the command's duration."""
        self.session = session or Session.new(request, datetime.datetime.now(datetime.UTC))
        self.store: AsyncSessionStore = store or MemoryStore()
        self.result: PaymentResult | None = None
        self.plan = plan
        self.request = request
        self.telephone = TerminalTelephone(texts, keypad, out)
        self.out = out
        self.timeout_s = timeout_s
        self.processor = processor
        self.outcome: Outcome | None = None

    def run(self) -> Outcome:
        self.telephone.note(
            f"payment call: {self.request.operation} order {self.request.order}, "
            f"language {self.request.language}"
        )
        asyncio.run(self._run())
        if self.outcome is None:
            raise RuntimeError("the plan ended without a Finish")
        return self.outcome

    async def _run(self) -> None:
        ctx = CallContext(
            label=self.telephone.uuid,
            plan=self.plan,
            session=self.session,
            merchant=self.plan.merchant,
            telephone=self.telephone,
            store=CallStore(self.store, self.telephone.uuid),
            processor=self.processor,
            processor_timeout_s=self.timeout_s,
            hooks=self,
        )
        await Executor().run(ctx)
        late = ctx.settlement.late if ctx.settlement is not None else None
        if late is not None:
            await late  # the late reversal is shown when it is done
        await ctx.store.drain()

    # -- the executor's hooks ------------------------------------------------------------

    def started(self, command: Command) -> None:
        if isinstance(command, ProcessPayment):
            self.telephone.note("processing (sandbox)...")

    async def recorded(self, ctx: CallContext, result: PaymentResult) -> None:
        self.result = result
        self.outcome = self.plan.outcome or Outcome.failed(result.reason or Reason.INTERNAL_ERROR)
        settled = ctx.settlement
        fields = settled.session_fields() if settled is not None else {}
        # The masked form of SPEC 7 (X-Pay-Card): the last four only.
        card = f"{'*' * 12}{result.card_last4} ({result.card_brand})" if result.card_last4 else "-"
        lines = [
            f"result:    {result.code}",
            f"reason:    {result.reason or '-'}",
            f"auth code: {result.auth_code or '-'}",
            f"card:      {card}",
        ]
        if result.token:
            lines.append(f"token:     {result.token}")
        if settled is not None:
            lines.append(f"raw code:  {fields['processor_raw_code'] or '-'}")
            if "reversal" in fields:
                lines.append(
                    f"reversal:  {fields['reversal']} ({fields.get('reversal_raw_code', '')})"
                )
        self.out.write("\n".join(["", "== payment result ==", *lines, ""]) + "\n")

    async def return_call(self, ctx: CallContext) -> None:
        self.telephone.note(f"call returned: {self.request.return_to}")
