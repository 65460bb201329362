"""What a command handler is: how it runs with respect to the media lane, and what
it does.

``Lane.MEDIA``: queued on the call's media lane and played in order (prompts, says,
recording masks, the return of the call). ``Lane.AFTER_MEDIA``: waits until all
media before it has played, then runs and may answer the engine with an event
(``Collect``, ``ProcessPayment``, a flow's menu or queue). ``Lane.AT_ONCE``: runs as
soon as it is reached (``Finish``: the result is stored without waiting for a prompt
to end; a flow's lookups run while its greeting plays).
"""

from __future__ import annotations

import enum
from typing import Any, Protocol


class Lane(enum.Enum):
    MEDIA = "media"
    AFTER_MEDIA = "after-media"
    AT_ONCE = "at-once"


class Handler(Protocol):
    lane: Lane
    # Still carried out after the caller hung up (the plan already committed to it:
    # a processor call, the recording of the result); every other command is dropped.
    after_hangup: bool

    # ``ctx``: the run's context: a payment's CallContext, a flow's FlowContext.
    async def run(self, command: Any, ctx: Any) -> Any:
        """Carry out ``command``; the event for the engine, if it answers one."""
        ...
