"""The ESL channel as a flow's telephone: flow prompts, say, TTS, keys, the queue.

- Flow prompts: ``<prompts_dir>/<lang>/flows/<flow>/<name>.wav`` (``payivr flows
  prompts`` builds them from the flow file's texts; recordings may replace them).
- Values: mod_say, ``say <lang> NUMBER PRONOUNCED|ITERATED <n>`` and, for dates,
  ``say <lang> CURRENT_DATE PRONOUNCED <epoch>``.
- Dynamic text: espeak-ng through the TTS cache, then ``playback``.
- Keys: ``play_and_get_digits`` into a random ``payivr_dtmf_*`` variable (a flow may
  collect a PIN), read from EXECUTE_COMPLETE and unset at once, as card digits are.
- Queue (mod_fifo): ``fifo_music`` and ``fifo_orbit_exten=_continue_:<timeout>`` set,
  then ``fifo <queue> in``. The application ends when an agent takes the caller
  (``fifo_serviced_uuid`` set; the agent's leg then bridges the caller), when the
  timeout passes (``fifo_status`` TIMEOUT) or when the caller hangs up. Answered:
  the wait is measured to that moment, then the talk lasts until the call ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from datetime import UTC, datetime
from pathlib import Path

from payivr.core.flow.commands import CollectKeys, EnterQueue
from payivr.core.flow.events import KeysEntered, NoInput, QueueLeft
from payivr.esl.channel import CallChannel, CallerGone
from payivr.esl.codec import SECRET_VARIABLE_PREFIX
from payivr.esl.telephone import TERMINATOR_VARIABLE, EslTelephone, Speech
from payivr.execution.telephone import Telephone
from payivr.flows.speech import TtsCache

KEYS_REGEX = r"^[0-9*#]+$"
NO_SOUND = "silence_stream://250"
SAY_KINDS = {"number": "NUMBER PRONOUNCED", "digits": "NUMBER ITERATED"}


def music_path(prompts_dir: Path, music: str) -> Path:
    """Where the queue's music on hold is (``payivr flows prompts`` makes it)."""
    return prompts_dir / "music" / f"{music}.wav"


def flow_prompt_path(prompts_dir: Path, flow: str, name: str, language: str) -> Path:
    return prompts_dir / language / "flows" / flow / f"{name}.wav"


class EslFlowTelephone(EslTelephone):
    def __init__(self, channel: CallChannel, speech: Speech, tts: TtsCache) -> None:
        super().__init__(channel, speech)
        self.tts = tts

    def payment_telephone(self, language: str) -> Telephone:
        return EslTelephone(self.channel, Speech(self.speech.prompts_dir, language))

    async def play_prompt(self, flow: str, name: str, language: str) -> None:
        path = flow_prompt_path(self.speech.prompts_dir, flow, name, language)
        await self.channel.execute("playback", str(path))

    async def say_value(self, kind: str, value: str, language: str) -> None:
        if kind == "date":
            epoch = _epoch(value)
            if epoch is None:
                await self.speak(value, language)
                return
            await self.channel.execute("say", f"{language} CURRENT_DATE PRONOUNCED {epoch}")
            return
        await self.channel.execute("say", f"{language} {SAY_KINDS[kind]} {value}")

    async def speak(self, text: str, language: str) -> None:
        path = await self.tts.wav(text, language)
        await self.channel.execute("playback", str(path))

    async def collect_keys(self, command: CollectKeys) -> KeysEntered | NoInput:
        var = SECRET_VARIABLE_PREFIX + secrets.token_hex(8)
        prompt = (
            str(flow_prompt_path(self.speech.prompts_dir, command.flow, command.prompt,
                                 command.language))
            if command.prompt else NO_SOUND
        )  # fmt: skip
        arg = " ".join(
            [
                str(command.min_digits),
                str(command.max_digits),
                "1",  # tries: the flow owns attempts and re-prompts
                str(command.timeout_ms),
                command.terminators or "none",
                prompt,
                NO_SOUND,
                var,
                KEYS_REGEX,
                str(command.digit_timeout_ms),
            ]
        )
        result = await self.channel.execute("play_and_get_digits", arg)
        try:
            with contextlib.suppress(CallerGone):
                await self.channel.unset_variables([var, var + "_invalid", TERMINATOR_VARIABLE])
            if result.hungup:
                raise CallerGone()
            value = result.secrets.pop("variable_" + var, None)
            if value is None:
                return NoInput()
            keys = value.reveal()
            value.wipe()
            return KeysEntered(keys) if keys else NoInput()
        finally:
            result.wipe()

    async def enter_queue(self, command: EnterQueue) -> QueueLeft:
        loop = asyncio.get_running_loop()
        music = music_path(self.speech.prompts_dir, command.music)
        variables = {
            "fifo_music": str(music),
            "fifo_orbit_exten": f"_continue_:{command.timeout_s}",
        }
        if command.chime is not None:
            # mod_fifo plays the list over the music every fifo_chime_freq seconds.
            c = command.chime
            path = flow_prompt_path(self.speech.prompts_dir, c.flow, c.name, c.language)
            variables["fifo_chime_list"] = str(path)
            variables["fifo_chime_freq"] = str(command.chime_every_s)
        await self.channel.set_variables(variables)
        entered = loop.time()
        result = await self.channel.execute("fifo", f"{command.queue} in")
        waited = round(loop.time() - entered)
        if result.hungup:
            return QueueLeft("abandoned", waited, True)
        status = result.variables.get("fifo_status", "")
        if result.variables.get("fifo_serviced_uuid") or status == "TALKING":
            await self.wait_hangup()  # the agent and the caller talk until one hangs up
            return QueueLeft("answered", waited, True)
        if status == "TIMEOUT":
            return QueueLeft("timeout", waited, self.channel.hungup)
        return QueueLeft("abandoned", waited, self.channel.hungup)

    async def hang_up(self) -> None:
        with contextlib.suppress(CallerGone):
            await self.channel.hangup("NORMAL_CLEARING")


def _epoch(value: str) -> int | None:
    """An ISO 8601 date or time stamp (``2026-12-03``, ``2026-12-03T10:15:00Z``)."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())
