"""Card tones out of the agent's audio: rtpengine's `block DTMF`, on and off.

What rtpengine 10.5.3.5 needs for the agent to receive neither RFC 4733 events of the
card digits nor in-band tone energy, while speech goes on (each fact pinned in
tests/integration/rtpengine/test_masking.py):

* `DTMF-security: silence` (or `tone`): a blocked digit becomes silence (or a flat
  tone) in the audio, and no event is sent on;
* the `detect-DTMF` flag in the `block DTMF` message itself: rtpengine's DSP then
  looks for tones in the decoded audio (a flag given only in the offer is not enough);
* a `delay-buffer` of at least 40 ms: the audio is held that long so a detected tone
  is cut out before it leaves. Without it, silence and tone change nothing in the
  audio and blocked events come out as audible tones.

`unblock DTMF` keeps the delay buffer unless `delay-buffer: 0` is sent with it.
The FreeSWITCH side of the agent's leg is named by its label (payivr.media.sdp).
"""

from __future__ import annotations

from payivr.media.ng import NgClient
from payivr.media.sdp import FS_LABEL
from payivr.media.settings import RtpengineSettings


def block_params(settings: RtpengineSettings) -> dict[str, str | int | list[str]]:
    return {
        "DTMF-security": settings.dtmf_security,
        "flags": ["detect-DTMF"],
        "delay-buffer": settings.delay_buffer_ms,
    }


UNBLOCK_PARAMS: dict[str, str | int | list[str]] = {"delay-buffer": 0}


class AgentMedia:
    """Masks and unmasks the caller's audio towards the agent, one call at a time."""

    def __init__(self, ng: NgClient, settings: RtpengineSettings) -> None:
        self.ng = ng
        self.settings = settings

    async def mask(self, call_id: str) -> None:
        await self.ng.request(
            "block DTMF", **{"call-id": call_id, "label": FS_LABEL, **block_params(self.settings)}
        )

    async def unmask(self, call_id: str) -> None:
        await self.ng.request(
            "unblock DTMF", **{"call-id": call_id, "label": FS_LABEL, **UNBLOCK_PARAMS}
        )
