"""What the agent's leg gets while the caller keys card data, and its undoing.

During a payment (SPEC 9): the agent hears no DTMF and no in-band tones of the card
digits. With rtpengine in the agent leg's media path (`services.rtpengine`, the
agent leg routed through Kamailio), the caller's audio keeps flowing to the agent
and rtpengine cuts the card tones out of it (`block DTMF`, payivr.media.masking):
the agent hears the caller all the time. Without rtpengine, or when it does not
answer the block, the caller's audio towards the agent is muted instead: no card
tone may ever reach the agent because a media proxy was down.

The FreeSWITCH controls, all switched on at the start of a payment and off at its
end, so that afterwards audio and DTMF flow exactly as before:

* `uuid_drop_dtmf <agent-leg> on [mask_digits D | mask_file F]`: every DTMF
  FreeSWITCH would send to the agent's leg is dropped or replaced by a flat masking
  tone (transcript bridge_dtmf_drop: the agent received `0000` for `123#`).
* `uuid_audio <agent-leg> start write mute 1`: the audio written to the agent's leg
  (the caller's voice, and any in-band DTMF in it) is muted; the caller still hears
  the agent. `uuid_audio <agent-leg> stop` restores it.
* `sensitive_dtmf=true` on the caller's leg: no DTMF events, no `RECV DTMF` log
  lines, no relay (checked per key by FreeSWITCH);
* the digit machine that reads the caller's keys on the running bridge
  (`bind_digit_action`, payivr.agent.keys): it consumes each key before FreeSWITCH
  queues it, so no key is relayed to the agent's leg at all while it is on.
  `clear_digit_action all` removes it. These two are the payment's only applications
  on the caller's leg: each ends at once, so the bridge pauses for about one frame.
"""

from __future__ import annotations

import logging

from payivr.agent.keys import BIND_KEYS, CLEAR_KEYS, MATCHED_VARIABLE
from payivr.agent.settings import AgentSettings
from payivr.esl.channel import CallChannel, CallerGone
from payivr.media.masking import AgentMedia
from payivr.media.ng import NgError

log = logging.getLogger("payivr.agent")


class AgentLegGuard:
    """Switches the protections on and off for one payment on one call."""

    def __init__(
        self,
        channel: CallChannel,
        agent_uuid: str,
        settings: AgentSettings,
        media: AgentMedia | None = None,
        agent_call_id: str = "",
    ) -> None:
        self.channel = channel
        self.agent_uuid = agent_uuid
        self.settings = settings
        self.media = media
        self.agent_call_id = agent_call_id  # the agent leg's SIP Call-ID (rtpengine's key)
        self.active: list[str] = []  # what is on, to undo exactly that

    async def on(self) -> None:
        if await self._api(f"uuid_drop_dtmf {self.agent_uuid} {self.settings.drop_dtmf_args()}"):
            self.active.append("drop_dtmf")
        masked = await self._mask_media()
        if (not masked and self.settings.mute_caller_audio) and await self._api(
            f"uuid_audio {self.agent_uuid} start write mute 1"
        ):
            self.active.append("mute")
        await self.channel.set_variables({"sensitive_dtmf": "true"})
        self.active.append("sensitive")
        await self.channel.execute("bind_digit_action", BIND_KEYS)
        self.active.append("keys")

    async def off(self) -> None:
        """Undo what on() did (in reverse order); safe after the caller has gone."""
        while self.active:
            what = self.active.pop()
            try:
                if what == "keys":
                    await self.channel.execute("clear_digit_action", CLEAR_KEYS)
                    await self.channel.unset_variables([MATCHED_VARIABLE])
                elif what == "sensitive":
                    await self.channel.set_variables({"sensitive_dtmf": "false"})
                elif what == "mute":
                    await self._api(f"uuid_audio {self.agent_uuid} stop")
                elif what == "media":
                    await self._unmask_media()
                elif what == "drop_dtmf":
                    await self._api(
                        f"uuid_drop_dtmf {self.agent_uuid} {self.settings.drop_dtmf_off_args()}"
                    )
            except CallerGone:
                return

    async def _mask_media(self) -> bool:
        """rtpengine blocks the card tones towards the agent; False if it cannot."""
        if self.media is None:
            return False
        try:
            await self.media.mask(self.agent_call_id)
        except NgError as exc:
            log.warning("call %s: rtpengine did not mask (%s): muting the caller towards "
                        "the agent instead", self.channel.uuid, exc)  # fmt: skip
            return False
        self.active.append("media")
        return True

    async def _unmask_media(self) -> None:
        if self.media is None:
            return
        try:
            await self.media.unmask(self.agent_call_id)
        except NgError as exc:  # the agent's leg may be gone with its rtpengine call
            log.warning("call %s: rtpengine did not unmask: %s", self.channel.uuid, exc)

    async def _api(self, command: str) -> bool:
        reply = await self.channel.api(command)
        if reply.startswith("+OK"):
            return True
        # The agent's leg may be gone (agent hung up): nothing left to protect there.
        log.warning(
            "call %s: %s refused: %s", self.channel.uuid, command.split(" ")[0], reply.strip()[:80]
        )
        return False
