"""The executor's Telephone on a caller's leg that stays bridged to the agent.

FreeSWITCH 1.10 suspends a bridge while an application runs on one of its legs
(switch_ivr_bridge.c: the peer is flagged CF_SUSPEND until the application ends), so
agent mode runs none while the payment's prompts and fields go on:

* a prompt is mixed into what the caller hears with the API
  `uuid_displace <caller> start <file> 0 mux` (switch_ivr_async.c: a media bug with
  SMBF_NO_PAUSE whose write-replace callback adds the file's samples to the frames
  written to the caller and leaves the frames read from the caller untouched): the
  agent keeps hearing the caller, the caller hears the agent and the prompt. The bug
  removes itself at the file's end; payivr waits for the file's length (from its
  header), or stops it early with `uuid_displace <caller> stop <file>` when the
  caller starts keying (barge-in, as play_and_get_digits does);
* keys come from the digit machine's events on the running bridge
  (payivr.agent.keys) into an in-memory queue of SecretDigits; the field's first-key
  timeout (from the prompt's end), inter-key timeout, terminators and maximum length
  are applied here. Keys pressed before a field opens (typing ahead during the
  previous prompt) count for the next field, as FreeSWITCH's DTMF queue would.

Amounts and codes are not spoken to the caller in agent mode (mod_say is an
application): the agent reads them from the panel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import wave

from payivr.core.plan import Collect, DigitsEntered, Event, InputTimeout
from payivr.core.secrets import SecretDigits
from payivr.esl.channel import CallChannel, CallerGone
from payivr.esl.telephone import ChannelTelephone, Speech

log = logging.getLogger("payivr.agent")

FIELD_VARIABLE = "payivr_field"  # the open field's name (never a digit), for operators


def prompt_seconds(path: str) -> float:
    """A WAV prompt's length; 0 when it cannot be read (then nothing was played)."""
    try:
        with wave.open(path, "rb") as wav:
            return wav.getnframes() / float(wav.getframerate())
    except (OSError, EOFError, wave.Error):
        return 0.0


class KeyQueue:
    """The caller's keys in arrival order, each a one-key SecretDigits."""

    def __init__(self) -> None:
        self._keys: asyncio.Queue[SecretDigits] = asyncio.Queue()
        self.arrived = asyncio.Event()  # set by each key: a playing prompt stops

    def put(self, key: SecretDigits) -> None:
        self._keys.put_nowait(key)
        self.arrived.set()

    async def get(self) -> SecretDigits:
        return await self._keys.get()

    def flush(self) -> None:
        """Wipe whatever was keyed and not read (a payment's start or end)."""
        while not self._keys.empty():
            self._keys.get_nowait().wipe()
        self.arrived.clear()


class BridgedTelephone(ChannelTelephone):
    """Prompts mixed into the caller's leg, keys read from the running bridge."""

    def __init__(
        self, channel: CallChannel, speech: Speech, keys: KeyQueue, *, guided: bool = False
    ) -> None:
        super().__init__(channel, speech)
        self.keys = keys
        # Agent-guided style: no prompt at all (the agent explains); fields still run.
        self.guided = guided
        self.broken = asyncio.Event()  # the agent broke in (restart/cancel)
        self._playing: str | None = None

    async def play(self, prompt: str) -> None:
        await self._mix(self.speech.prompt(prompt), stop_on_key=False)

    async def say_amount(self, amount: int, currency: str) -> None:
        log.debug("call %s: amounts are shown to the agent, not said", self.uuid)

    async def say_digits(self, text: str) -> None:
        log.debug("call %s: codes are shown to the agent, not said", self.uuid)

    async def break_in(self) -> None:
        """End the prompt or field running now (the agent's restart or cancel)."""
        self.broken.set()
        await self._stop_mix()

    async def collect(self, command: Collect) -> Event:
        """One field from the caller's keys; the digits exist only in SecretDigits."""
        if self.hungup:
            raise CallerGone()
        self.broken.clear()
        await self._api(f"uuid_setvar {self.uuid} {FIELD_VARIABLE} {command.field.value}")
        digits = SecretDigits("")
        try:
            await self._mix(self.speech.prompt(command.prompt), stop_on_key=True)
            terminator = await self._read(command, digits)
            if self.hungup:
                raise CallerGone()
            if not digits and terminator is None:
                digits.wipe()
                return InputTimeout(command.field)
            entered = DigitsEntered(command.field, digits, terminator)
            digits = SecretDigits("")  # handed over: the plan owns (and wipes) it now
            return entered
        finally:
            digits.wipe()
            with contextlib.suppress(CallerGone):
                await self._api(f"uuid_setvar {self.uuid} {FIELD_VARIABLE}")

    async def _read(self, command: Collect, digits: SecretDigits) -> str | None:
        """Keys into `digits` until a terminator, the maximum, a timeout or a break."""
        terminators = command.terminators or "#"
        timeout_s = command.timeout_ms / 1000
        while len(digits) < command.max_digits:
            key = await self._next_key(timeout_s)
            if key is None:
                return None
            try:
                await self._api(f"uuid_setvar {self.uuid} last_matching_digits")
                if key.is_key_in(terminators):
                    return "#" if key.is_key_in("#") else "*"
                if key.is_digits():
                    digits.append(key)
            finally:
                key.wipe()
            timeout_s = command.digit_timeout_ms / 1000
        return None

    async def _next_key(self, timeout_s: float) -> SecretDigits | None:
        """The next key, or None at the timeout, a break or the caller's hang-up."""
        get = asyncio.ensure_future(self.keys.get())
        broken = asyncio.ensure_future(self.broken.wait())
        gone = asyncio.ensure_future(self.wait_hangup())
        try:
            await asyncio.wait({get, broken, gone}, timeout=timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            for task in (broken, gone):
                task.cancel()
            if not get.done():
                get.cancel()
        if get.done() and not get.cancelled():
            key = get.result()
            if broken.done() or gone.done():
                key.wipe()
                return None
            return key
        return None

    async def _mix(self, path: str, *, stop_on_key: bool) -> None:
        """Mix one prompt into the caller's leg and wait for its end."""
        if self.guided or self.broken.is_set():
            return
        seconds = await asyncio.to_thread(prompt_seconds, path)
        if seconds <= 0:
            return
        if stop_on_key:
            self.keys.arrived.clear()
        reply = await self._api(f"uuid_displace {self.uuid} start {path} 0 mux")
        if not reply.startswith("+OK"):
            log.warning("call %s: a prompt was not mixed in: %s", self.uuid, reply.strip()[:80])
            return
        self._playing = path
        waits = [asyncio.ensure_future(self.broken.wait()),
                 asyncio.ensure_future(self.wait_hangup())]  # fmt: skip
        if stop_on_key:
            waits.append(asyncio.ensure_future(self.keys.arrived.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        if any(task.done() and not task.cancelled() for task in waits):
            await self._stop_mix()  # a key, a break or a hang-up: stop it now
        self._playing = None

    async def _stop_mix(self) -> None:
        path, self._playing = self._playing, None
        if path is not None and not self.hungup:
            with contextlib.suppress(CallerGone):
                await self._api(f"uuid_displace {self.uuid} stop {path}")

    async def _api(self, command: str) -> str:
        if self.hungup:
            raise CallerGone()
        return await self.channel.api(command)
