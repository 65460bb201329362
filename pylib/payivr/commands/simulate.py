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
import contextlib
import datetime
import secrets
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from payivr.commands import load_or_report
from payivr.core.config import MerchantConfig
from payivr.core.errors import Rejection
from payivr.core.plan import (
    CallerHungUp,
    CapturePlan,
    Collect,
    Command,
    DigitsEntered,
    Event,
    Finish,
    InputTimeout,
    MaskRecording,
    Play,
    ProcessorAnswered,
    ProcessPayment,
    ReturnCall,
    SayAmount,
    SayDigits,
    UnmaskRecording,
)
from payivr.core.processor import Operation, Processor, ProcessorAnswer, ResultCode
from payivr.core.prompts import PromptCatalogueError, format_amount, load_prompts
from payivr.core.request import PaymentRequest, parse_request
from payivr.core.result import Outcome
from payivr.core.sandbox import SandboxProcessor
from payivr.core.secrets import SecretDigits
from payivr.processors.outcome import ChargeOutcome, charge_and_settle

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
    simulator = Simulator(plan, request, texts, keypad, out, timeout_s, _sandbox(merchant))
    with keypad.session():
        outcome = simulator.run()
    return 0 if outcome.code is ResultCode.APPROVED else 1


def _sandbox(merchant: MerchantConfig) -> SandboxProcessor:
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


class Simulator:
    """Drives one CapturePlan: carries out its commands, feeds back the events."""

    def __init__(
        self,
        plan: CapturePlan,
        request: PaymentRequest,
        texts: dict[str, str],
        keypad: Keypad,
        out: TextIO,
        timeout_s: float,
        processor: Processor,
    ) -> None:
        self.plan = plan
        self.request = request
        self.texts = texts
        self.keypad = keypad
        self.out = out
        self.timeout_s = timeout_s
        self.processor = processor
        self.outcome: Outcome | None = None
        # The settled processor call: its raw code and any reversal, shown with the result.
        self.settled: ChargeOutcome | None = None

    def run(self) -> Outcome:
        self._note(
            f"payment call: {self.request.operation} order {self.request.order}, "
            f"language {self.request.language}"
        )
        pending: deque[Command] = deque(self.plan.start())
        while pending:
            event = self._carry_out(pending.popleft())
            if event is not None:
                pending.extend(self.plan.handle(event))
        assert self.outcome is not None, "the plan always ends with a Finish"
        return self.outcome

    def _carry_out(self, command: Command) -> Event | None:
        if isinstance(command, Play):
            self._say(self.texts[command.prompt])
        elif isinstance(command, SayAmount):
            self._say(format_amount(command.amount, command.currency))
        elif isinstance(command, SayDigits):
            self._say(" ".join(command.digits))
        elif isinstance(command, MaskRecording):
            self._note("recording masked")
        elif isinstance(command, UnmaskRecording):
            self._note("recording unmasked")
        elif isinstance(command, Collect):
            return self._collect(command)
        elif isinstance(command, ProcessPayment):
            return ProcessorAnswered(self._charge(command))
        elif isinstance(command, Finish):
            self.outcome = command.outcome
            self._print_result(command.outcome)
        elif isinstance(command, ReturnCall):
            self._note(f"call returned: {self.request.return_to}")
        return None

    def _collect(self, collect: Collect) -> Event:
        self._say(self.texts[collect.prompt])
        self.out.write(f"[{collect.field} > ] ")
        self.out.flush()
        entry = self.keypad.read(collect)
        if not self.keypad.interactive:
            self.out.write("\n")
        if entry is None:
            self._note("caller hung up")
            return CallerHungUp()
        if len(entry.digits) == 0 and entry.terminator is None:
            return InputTimeout(collect.field)
        return DigitsEntered(collect.field, entry.digits, entry.terminator)

    def _charge(self, payment: ProcessPayment) -> ProcessorAnswer:
        charge = payment.charge_request(self.request, timeout_s=self.timeout_s)
        self._note("processing (sandbox)...")
        try:
            # As the ESL application does: a timeout or an untrustworthy answer is
            # `failed`, and the processor is asked at once to void what it may have done.
            self.settled = charge_and_settle(self.processor, charge)
        finally:
            if payment.cvv is not None:
                payment.cvv.wipe()
        return self.settled.answer

    def _print_result(self, outcome: Outcome) -> None:
        # The masked form of SPEC 7 (X-Pay-Card): the last four only.
        card = (
            f"{'*' * 12}{outcome.card_last4} ({outcome.card_brand})" if outcome.card_last4 else "-"
        )
        lines = [
            f"result:    {outcome.code}",
            f"reason:    {outcome.reason or '-'}",
            f"auth code: {outcome.auth_code or '-'}",
            f"card:      {card}",
        ]
        if outcome.token:
            lines.append(f"token:     {outcome.token}")
        if self.settled is not None:
            fields = self.settled.session_fields()
            lines.append(f"raw code:  {fields['processor_raw_code'] or '-'}")
            if "reversal" in fields:
                lines.append(f"reversal:  {fields['reversal']} ({fields['reversal_raw_code']})")
        self.out.write("\n".join(["", "== payment result ==", *lines, ""]) + "\n")

    def _say(self, text: str) -> None:
        self.out.write(f"IVR: {text}\n")

    def _note(self, text: str) -> None:
        self.out.write(f"  ({text})\n")
        self.out.flush()
