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
from payivr.core.plan import Collect, DigitsEntered, Event, InputTimeout, Listen
from payivr.core.secrets import SecretDigits
from payivr.esl.channel import CallChannel, CallerGone
from payivr.esl.codec import SECRET_VARIABLE_PREFIX
from payivr.esl.recordings import RecordingMasker
from payivr.esl.unicast import MessageChannel, StreamUnavailable, UnicastStream, read_l16
from payivr.execution.processing import wait_for_hangup
from payivr.speech.listener import KeyPressed, listen
from payivr.speech.pool import DecodingPool

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

    def digit(self, digit: str) -> str:
        """The digit file mod_say plays (``digits/7.wav``): used for read-backs."""
        return str(self.prompts_dir / self.language / "digits" / f"{digit}.wav")


@dataclass(frozen=True)
class Listening:
    """What a call needs to take spoken card data (docs/dictation.md)."""

    recogniser: DecodingPool  # decoding worker processes, shared by the process's calls


class ChannelTelephone:
    """What every Telephone on one FreeSWITCH channel shares: the channel's state,
    the hang-up watch and the recording masks. Subclasses say how prompts play and
    how fields are collected (applications here, a running bridge in agent mode)."""

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

    @property
    def media_lost(self) -> bool:
        return self.channel.media_lost

    async def wait_hangup(self) -> None:
        """For the processor's hang-up watch (payivr.execution.processing)."""
        await wait_for_hangup(self.channel)

    async def mask_recording(self) -> None:
        await self.masker.mask()

    async def unmask_recording(self) -> None:
        await self.masker.unmask()


class EslTelephone(ChannelTelephone):
    """The executor's Telephone on one FreeSWITCH channel.

    With ``listening`` it takes spoken digits over FreeSWITCH's ``unicast`` stream
    (payivr.esl.unicast), opened at the first ``Listen``. From then on every prompt
    is sent through that stream, because any playback application would end it for
    good; the first application that must run anyway (a keypad entry, ``say``) ends
    it, and later listens fall back to their keypad entry.
    """

    def __init__(
        self, channel: CallChannel, speech: Speech, listening: Listening | None = None
    ) -> None:
        super().__init__(channel, speech)
        self.listening = listening
        self._stream: UnicastStream | None = None
        self._stream_tried = False

    async def play(self, prompt: str) -> None:
        stream = self._live_stream()
        if stream is not None:
            await stream.play(read_l16(self.speech.prompt(prompt)), barge_in=False)
            return
        await self.channel.execute("playback", self.speech.prompt(prompt))

    async def listen(self, command: Listen) -> Event:
        """Spoken digits for ``command`` or, on a key press or without a stream or a
        recogniser for the language, its keypad entry."""
        stream = await self._open_stream()
        if stream is None or self.listening is None:
            return await self.collect(command.keyed)
        try:
            stream.drain()  # what was said during earlier prompts does not count
            await stream.play(read_l16(self.speech.prompt(command.prompt)))
            return await listen(
                command,
                self.speech.language,
                stream.frames(),
                self.listening.recogniser,
            )
        except KeyPressed:
            return await self.collect(command.keyed)

    async def read_back(self, digits: SecretDigits) -> None:
        """The digits from the digit files, through the stream only: a playback
        application would put the file names, hence the digits, in FreeSWITCH's log."""
        stream = self._live_stream()
        if stream is None:
            if self.channel.hungup:
                raise CallerGone()
            raise RuntimeError("read-back without the call's audio stream")
        audio = bytearray()
        for digit in digits.reveal():
            audio += read_l16(self.speech.digit(digit))
            audio += bytes(1600)  # 100 ms between digits
        try:
            await stream.play(bytes(audio), barge_in=False)
        finally:
            audio[:] = bytes(len(audio))

    def close(self) -> None:
        """Close the audio stream (the call is over)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _live_stream(self) -> UnicastStream | None:
        if self._stream is not None and self._stream.usable:
            return self._stream
        return None

    def _end_stream(self) -> None:
        """An application is about to run: it ends the unicast for good."""
        if self._stream is not None:
            self._stream.lost()

    async def _open_stream(self) -> UnicastStream | None:
        if self._stream is not None:
            return self._live_stream()
        if self._stream_tried or self.listening is None:
            return None
        if self.speech.language not in self.listening.recogniser.languages():
            return None
        if not isinstance(self.channel, MessageChannel):
            return None
        self._stream_tried = True
        try:
            self._stream = await UnicastStream.open(self.channel)
        except StreamUnavailable:
            log.warning("call %s: no audio from unicast; keypad entry instead", self.uuid)
            return None
        return self._stream

    async def say_amount(self, amount: int, currency: str) -> None:
        """ "twelve euros fifty": the number, the currency's name, the minor units."""
        self._end_stream()
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
        self._end_stream()
        await self.channel.execute("say", f"{self.speech.language} {kind} ITERATED {said}")

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
        self._end_stream()
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
