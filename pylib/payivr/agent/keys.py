"""Per-key notices from FreeSWITCH's DTMF events, for the agent's live digit count.

`play_and_get_digits` reports a field's digits only when the field is complete; the
agent panel also wants "6 digits so far". FreeSWITCH fires a `DTMF` event per key on
the caller's channel (unless `sensitive_dtmf` is true: transcript
play_and_get_digits_with_sensitive_dtmf), so the agent-mode socket subscribes to it
as well. The codec turns the event's `DTMF-Digit` header straight into a
`SecretDigits` (payivr.esl.codec): this module only asks "was it a digit?", wipes it,
and calls back with that one bit. No key value is ever read, kept, logged or sent.

The ESL connection has no public hook for extra events yet (docs/agent-assisted.md,
"Hooks asked of the ESL layer"), so `enable_key_events` wraps the connection's event
routing on that one instance.
"""

from __future__ import annotations

from collections.abc import Callable

from payivr.esl.codec import Message, encode_command
from payivr.esl.connection import EslConnection

KEY_EVENT = "DTMF"


def on_key_message(message: Message, own_uuid: str, notify: Callable[[bool], None]) -> bool:
    """Handle one event if it is a key press on `own_uuid`; True if it was a DTMF event.

    The key's value is wiped before `notify` runs, whatever `notify` does.
    """
    if message.event_name != KEY_EVENT:
        return False
    event = message.event or {}
    digit = message.secrets.get("DTMF-Digit")
    is_digit = digit is not None and digit.is_digits()
    message.wipe_secrets()
    if event.get("Unique-ID", own_uuid) == own_uuid:
        notify(is_digit)
    return True


async def enable_key_events(
    conn: EslConnection, notify: Callable[[bool], None], *, timeout: float = 5.0
) -> None:
    """Subscribe the connection to DTMF events and route them to `notify` (digit or not)."""
    original = conn._on_event

    def routed(message: Message) -> None:
        if not on_key_message(message, conn.uuid, notify):
            original(message)

    conn._on_event = routed  # type: ignore[method-assign]
    await conn._send(encode_command(f"filter Event-Name {KEY_EVENT}"), timeout)
