"""The ESL channel as the executor's Telephone: prompts, says, masks, digit entry.

Prompts are files `<prompts_dir>/<lang>/<prompt_id>.wav`; amounts and codes are said
with mod_say (`say <lang> NUMBER PRONOUNCED|ITERATED ...`).

Card digits are collected with `play_and_get_digits` into a channel variable with a
random name per collection (`payivr_dtmf_<hex>`). FreeSWITCH leaves the digits in that
variable (and `<var>_invalid`), where they would ride on every later event including
CHANNEL_HANGUP_COMPLETE (the CDR), so `collect` reads them from the
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

from payivr.core.currency import split_amount
from payivr.core.plan import Collect, DigitsEntered, Event, InputTimeout
from payivr.core.secrets import SecretDigits
from payivr.esl.channel import CallChannel, CallerGone
from payivr.esl.codec import SECRET_VARIABLE_PREFIX
from payivr.esl.recordings import RecordingMasker
from payivr.execution.processing import wait_for_hangup

log = logging.getLogger("payivr.esl")

# play_and_get_digits leaves this one set across calls (switch_ivr_read never clears
# it), so a stale "*" from an earlier field would look like a restart: cleared too.
TERMINATOR_VARIABLE = "read_terminator_used"
BAD_INPUT_SOUND = "silence_stream://250"
DIGITS_REGEX = r"^\d+$"


@dataclass(frozen=True)
class Speech:
    """Where prompts live and which language the call speaks."""

    prompts_dir: Path
    language: str

    def prompt(self, prompt_id: str) -> str:
        return str(self.prompts_dir / self.language / f"{prompt_id}.wav")

    def currency(self, code: str) -> str:
        return str(self.prompts_dir / self.language / f"currency-{code.lower()}.wav")


class EslTelephone:
    """The executor's Telephone on one FreeSWITCH channel."""

    def __init__(self, channel: CallChannel, speech: Speech) -> None:
        self.channel = channel
        self.speech = speech
        self.masker = RecordingMasker(channel)

    @property
    def uuid(self) -> str:
        return self.channel.uuid

    @property
    def hungup(self) -> bool:
        return self.channel.hungup

    async def wait_hangup(self) -> None:
        """For the processor's hang-up watch (payivr.execution.processing)."""
        await wait_for_hangup(self.channel)

    async def play(self, prompt: str) -> None:
        await self.channel.execute("playback", self.speech.prompt(prompt))

    async def say_amount(self, amount: int, currency: str) -> None:
        """ "twelve euros fifty": the number, the currency's name, the minor units."""
        major, minor = split_amount(amount, currency)
        lang = self.speech.language
        await self.channel.execute("say", f"{lang} NUMBER PRONOUNCED {major}")
        await self.channel.execute("playback", self.speech.currency(currency))
        if minor:
            await self.channel.execute("say", f"{lang} NUMBER PRONOUNCED {minor}")

    async def say_digits(self, text: str) -> None:
        """Last four or an authorisation code, one character at a time."""
        said = "".join(c for c in text if c.isalnum())
        if not said:
            return
        kind = "NUMBER" if said.isdigit() else "NAME_SPELLED"
        await self.channel.execute("say", f"{self.speech.language} {kind} ITERATED {said}")

    async def mask_recording(self) -> None:
        await self.masker.mask()

    async def unmask_recording(self) -> None:
        await self.masker.unmask()

    async def collect(self, command: Collect) -> Event:
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
