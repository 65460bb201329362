"""Mask every active recording of the call while card digits are keyed (SPEC 6).

`record_session_mask` needs the recording's path, and recordings may have been started
by others (the dialplan, an operator, payivr's own IVR-leg recording), so the masker
asks FreeSWITCH which `session_record` media bugs the channel has (`uuid_buglist`) and
masks each with `uuid_record <uuid> mask <path>`: the recording keeps its timeline,
with zeroed audio for the masked span (transcript record_mask: max |sample| 0).
"""

from __future__ import annotations

import logging
import re

from payivr.esl.channel import CallChannel, CallerGone

log = logging.getLogger("payivr.esl")

_BUG = re.compile(
    r"<media-bug>\s*<function>([^<]*)</function>\s*<target>([^<]*)</target>", re.DOTALL
)


def recording_paths(buglist: str) -> list[str]:
    """The targets of the `session_record` bugs in a `uuid_buglist` answer."""
    return [target for function, target in _BUG.findall(buglist) if function == "session_record"]


class RecordingMasker:
    """Masks and unmasks the recordings of one channel."""

    def __init__(self, channel: CallChannel) -> None:
        self.channel = channel
        self.masked: list[str] = []

    async def mask(self) -> list[str]:
        """Mask every recording running now; returns their paths."""
        listing = await self.channel.api(f"uuid_buglist {self.channel.uuid}")
        for path in recording_paths(listing):
            if path in self.masked:
                continue
            reply = await self.channel.api(f"uuid_record {self.channel.uuid} mask {path}")
            if reply.startswith("-ERR No such channel"):
                raise CallerGone()
            if reply.startswith("+OK"):
                self.masked.append(path)
            else:
                # Not fatal for the payment, but an operator must know: the path is
                # not card data, the reply is FreeSWITCH's own text.
                log.error(
                    "call %s: could not mask recording %s: %s",
                    self.channel.uuid,
                    path,
                    reply.strip(),
                )
        return list(self.masked)

    async def unmask(self) -> None:
        """Unmask what mask() masked."""
        while self.masked:
            path = self.masked.pop()
            await self.channel.api(f"uuid_record {self.channel.uuid} unmask {path}")
