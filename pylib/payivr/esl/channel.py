"""The small interface the per-call driver uses to control one FreeSWITCH channel.

Everything above this line (driver, executor, return of the call) talks to a
`CallChannel`; only `payivr.esl.connection` knows the event-socket protocol. Another
ESL library (greenswitch, genesis, a C binding) can replace it by implementing this
protocol, and tests can drive the driver against any implementation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from payivr.core.secrets import SecretDigits


class CallerGone(Exception):
    """The caller hung up or FreeSWITCH dropped the socket: the call cannot be driven.

    The single exception a driver has to expect from any channel operation; it is a
    normal end of a call, never logged with a traceback.
    """


class ChannelCommandError(Exception):
    """FreeSWITCH refused a command (`-ERR ...`). Carries the reply text only."""


@dataclass
class ExecuteResult:
    """What CHANNEL_EXECUTE_COMPLETE said about one application run.

    `variables` are the event's `variable_*` headers (prefix removed) minus card data;
    `secrets` the card-data variables, already as SecretDigits (the caller wipes them).
    `hungup` is true when the channel hung up before the application finished.
    """

    application: str
    response: str
    variables: Mapping[str, str]
    secrets: dict[str, SecretDigits] = field(default_factory=dict)
    hungup: bool = False

    def wipe(self) -> None:
        for value in self.secrets.values():
            value.wipe()
        self.secrets.clear()

    def __repr__(self) -> str:
        return (
            f"<ExecuteResult {self.application} response={self.response!r} "
            f"hungup={self.hungup} secrets={len(self.secrets)}>"
        )


class CallChannel(Protocol):
    """One call under the application's control (FreeSWITCH outbound socket)."""

    @property
    def uuid(self) -> str:
        """The channel's Unique-ID."""
        ...

    @property
    def channel_data(self) -> Mapping[str, str]:
        """The channel data FreeSWITCH sent on connect (url-decoded headers)."""
        ...

    @property
    def hungup(self) -> bool:
        """True once the channel has hung up (CHANNEL_HANGUP or the linger notice)."""
        ...

    @property
    def media_lost(self) -> bool:
        """True when the socket ended with no hang-up first: FreeSWITCH died."""
        ...

    async def execute(
        self, app: str, arg: str = "", *, timeout: float | None = None
    ) -> ExecuteResult:
        """Run a dialplan application; return when its EXECUTE_COMPLETE arrives.

        Raises CallerGone when the channel is already gone or the socket closes first.
        """
        ...

    async def api(self, command: str, *, timeout: float | None = None) -> str:
        """Run an API command (`uuid_setvar ...`); return its response body."""
        ...

    async def set_variables(self, values: Mapping[str, str]) -> None:
        """Set channel variables without running an application (no events fired)."""
        ...

    async def unset_variables(self, names: Iterable[str]) -> None:
        """Remove channel variables without running an application (no events fired)."""
        ...

    async def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        """Hang the call up (the BYE carries any `sip_bye_h_*` variables)."""
        ...
