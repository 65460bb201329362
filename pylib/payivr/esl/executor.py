"""Plan commands as FreeSWITCH applications, and their outcomes as plan events.

Prompts are files `<prompts_dir>/<lang>/<prompt_id>.wav`; amounts and codes are said
with mod_say (`say <lang> NUMBER PRONOUNCED|ITERATED ...`).

Card digits are collected with `play_and_get_digits` into a channel variable with a
random name per collection (`payivr_dtmf_<hex>`). FreeSWITCH leaves the digits in that
variable (and `<var>_invalid`), where they would ride on every later event including
CHANNEL_HANGUP_COMPLETE (the CDR), so the executor reads them from the
EXECUTE_COMPLETE (the codec has already put them into SecretDigits) and removes the
variables with `uuid_setvar_multi` before anything else happens on the channel: an
API command, which fires no channel event that could carry them.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from payivr.core.plan import (
    Collect,
    DigitsEntered,
    InputTimeout,
    MaskRecording,
    Play,
    SayAmount,
    SayDigits,
    UnmaskRecording,
)
from payivr.core.secrets import SecretDigits
from payivr.esl.channel import CallChannel, CallerGone
from payivr.esl.codec import SECRET_VARIABLE_PREFIX
from payivr.esl.recordings import RecordingMasker

log = logging.getLogger("payivr.esl")

# play_and_get_digits leaves this one set across calls (switch_ivr_read never clears
# it), so a stale "*" from an earlier field would look like a restart: cleared too.
TERMINATOR_VARIABLE = "read_terminator_used"
BAD_INPUT_SOUND = "silence_stream://250"
DIGITS_REGEX = r"^\d+$"

# ISO 4217 minor-unit exponents that are not 2 (the amount is in minor units).
_EXPONENTS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}  # fmt: skip


def split_amount(amount: int, currency: str) -> tuple[int, int]:
    """(major, minor) units of an amount given in minor units: 1250 EUR -> (12, 50)."""
    exponent = _EXPONENTS.get(currency.upper(), 2)
    if exponent == 0:
        return amount, 0
    major, minor = divmod(amount, 10**exponent)
    return int(major), int(minor)


@dataclass(frozen=True)
class Speech:
    """Where prompts live and which language the call speaks."""

    prompts_dir: Path
    language: str

    def prompt(self, prompt_id: str) -> str:
        return str(self.prompts_dir / self.language / f"{prompt_id}.wav")

    def currency(self, code: str) -> str:
        return str(self.prompts_dir / self.language / f"currency-{code.lower()}.wav")


class CommandExecutor:
    """Carries out the plan's I/O commands on one channel."""

    def __init__(self, channel: CallChannel, speech: Speech, masker: RecordingMasker) -> None:
        self.channel = channel
        self.speech = speech
        self.masker = masker

    async def media(self, command: object) -> bool:
        """Carry out a prompt, say or recording-mask command; False for any other.

        One dispatch for every driver (the ESL call, agent mode), so a new media
        command is handled in one place.
        """
        if isinstance(command, Play):
            await self.play(command)
        elif isinstance(command, SayAmount):
            await self.say_amount(command)
        elif isinstance(command, SayDigits):
            await self.say_digits(command)
        elif isinstance(command, MaskRecording):
            await self.mask(command)
        elif isinstance(command, UnmaskRecording):
            await self.unmask(command)
        else:
            return False
        return True

    async def play(self, command: Play) -> None:
        await self.channel.execute("playback", self.speech.prompt(command.prompt))

    async def say_amount(self, command: SayAmount) -> None:
        """ "twelve euros fifty": the number, the currency's name, the minor units."""
        major, minor = split_amount(command.amount, command.currency)
        lang = self.speech.language
        await self.channel.execute("say", f"{lang} NUMBER PRONOUNCED {major}")
        await self.channel.execute("playback", self.speech.currency(command.currency))
        if minor:
            await self.channel.execute("say", f"{lang} NUMBER PRONOUNCED {minor}")

    async def say_digits(self, command: SayDigits) -> None:
        """Last four or an authorisation code, one character at a time."""
        text = "".join(c for c in command.digits if c.isalnum())
        if not text:
            return
        kind = "NUMBER" if text.isdigit() else "NAME_SPELLED"
        await self.channel.execute("say", f"{self.speech.language} {kind} ITERATED {text}")

    async def mask(self, _: MaskRecording) -> None:
        await self.masker.mask()

    async def unmask(self, _: UnmaskRecording) -> None:
        await self.masker.unmask()

    async def collect(self, command: Collect) -> DigitsEntered | InputTimeout:
        """One play_and_get_digits; the digits never exist outside SecretDigits.

        Raises CallerGone if the caller hangs up before or during the collection (any
        partial entry is wiped).
        """
        var = SECRET_VARIABLE_PREFIX + secrets.token_hex(8)
        arg = " ".join(
            [
                str(command.min_digits),
                str(command.max_digits),
                "1",  # tries: the plan owns attempts and re-prompts
                str(command.timeout_ms),
                command.terminators or "#",
                self.speech.prompt(command.prompt),
                BAD_INPUT_SOUND,
                var,
                DIGITS_REGEX,
                str(command.digit_timeout_ms),
            ]
        )
        result = await self.channel.execute("play_and_get_digits", arg)
        digits: SecretDigits | None = None
        try:
            # Remove the variables before anything else runs on the channel (after a
            # hang-up too: the session lingers, and every event it still fires would
            # carry them).
            with contextlib.suppress(CallerGone):
                await self.channel.unset_variables([var, var + "_invalid", TERMINATOR_VARIABLE])
            if result.hungup:
                raise CallerGone()
            value = result.secrets.pop("variable_" + var, None)
            invalid = result.secrets.pop("variable_" + var + "_invalid", None)
            digits = value if value is not None else invalid
            if value is not None and invalid is not None:
                invalid.wipe()
            terminator = result.variables.get(TERMINATOR_VARIABLE) or None
            if terminator not in ("#", "*"):
                terminator = None
            if digits is None and terminator is None:
                return InputTimeout(command.field)
            entered = DigitsEntered(command.field, digits or SecretDigits(""), terminator)
            digits = None  # handed over: the plan owns (and wipes) it now
            return entered
        finally:
            if digits is not None:
                digits.wipe()
            result.wipe()
