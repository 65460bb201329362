"""The caller's side of a call, as the command handlers use it.

Implemented by the ESL channel (payivr.esl.telephone), agent mode's wrapper of it
(payivr.agent.payment) and the terminal (payivr.commands.simulate). Every method may
raise ``CallerGone`` (payivr.esl.channel): the caller hung up or the call's socket
went away, the single exception a handler has to expect.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from payivr.core.plan import Collect, Event, Listen
from payivr.core.secrets import SecretDigits


class Telephone(Protocol):
    @property
    def uuid(self) -> str:
        """The call's id, for log lines."""
        ...

    @property
    def hungup(self) -> bool:
        """True once the caller can hear nothing more."""
        ...

    @property
    def media_lost(self) -> bool:
        """True when the call was lost with its media server (FreeSWITCH died), not
        hung up by the caller: the plan then records failed/ivr-unavailable. False for
        a driver whose media cannot die under it (the terminal)."""
        ...

    async def play(self, prompt: str) -> None:
        """Play one prompt of the catalogue (payivr.core.prompts.PromptId)."""
        ...

    async def say_amount(self, amount: int, currency: str) -> None:
        """Say an amount given in minor units."""
        ...

    async def say_digits(self, text: str) -> None:
        """Say characters one by one (a last four, an authorisation code)."""
        ...

    async def mask_recording(self) -> None:
        """Start masking every recording of the call."""
        ...

    async def unmask_recording(self) -> None:
        """Stop masking what mask_recording masked."""
        ...

    async def collect(self, command: Collect) -> Event:
        """One entry for ``command.field``: DigitsEntered or InputTimeout (or, where a
        driver lets someone else end the payment, CancelRequested). The digits are
        handed over in SecretDigits, owned by the plan from then on."""
        ...


@runtime_checkable
class ListeningTelephone(Telephone, Protocol):
    """A telephone that can also take spoken card data (docs/dictation.md)."""

    async def listen(self, command: Listen) -> Event:
        """Prompt and listen: SpeechHeard, SpeechUnclear or InputTimeout; on a key
        press (or when it cannot listen after all) the answer of ``command.keyed``."""
        ...

    async def read_back(self, digits: SecretDigits) -> None:
        """Say ``digits`` from the digit prompt files, never a synthesiser."""
        ...
