"""The caller's keys during an agent payment, read on the running bridge.

No application runs on the caller's leg while a field is open (FreeSWITCH would
suspend the bridge, docs/agent-assisted.md), and `sensitive_dtmf` stays true for the
whole payment, which in FreeSWITCH 1.10 (switch_channel.c) flags each queued key
sensitive: no `DTMF` event, no `RECV DTMF` log line, no relay to the agent's leg.
What still sees each key is the channel's digit machine: `switch_channel_queue_dtmf`
hands the key to `switch_core_session_recv_dtmf` before flagging it, and that feeds
the session's dmachine, which consumes it (the key is then never queued, so never
relayed nor logged). So, per payment:

* `bind_digit_action payivr,~^[0-9*#]$,payivr_key,1` (mod_dptools; an application,
  run once at the payment's start, before the first field) gives the caller's leg a
  digit machine that matches every single key. On each match FreeSWITCH builds a
  plain event (`switch_event_create_plain`: no Event-Name, no channel headers, only
  `payivr_key: 1` and `digits: <key>`) and queues it on the session
  (switch_core_session_queue_event), never fires it to the event system;
* `divert_events on` (an event-socket command of this call's outbound socket) makes
  FreeSWITCH hand the session's queued events to this socket alone
  (mod_event_socket.c: `switch_core_session_dequeue_event` into the listener's own
  queue, past every filter): no other event-socket client, fs_cli included, can
  subscribe to them;
* `clear_digit_action all` at the payment's end destroys the digit machine: keys are
  queued, relayed and evented as before.

The codec turns `digits` (and `variable_last_matching_digits`, which the digit action
leaves on the channel) straight into SecretDigits (payivr.esl.codec). The telephone
removes that variable after each key (`uuid_setvar`, an API: no event).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from payivr.core.secrets import SecretDigits
from payivr.esl.codec import Message, encode_command
from payivr.esl.connection import EslConnection

log = logging.getLogger("payivr.agent")

KEY_ACTION = "payivr_key"  # the binding's event header: this event is a caller key
MATCHED_VARIABLE = "last_matching_digits"  # mod_dptools sets it on every match
BIND_KEYS = f"payivr,~^[0-9*#]$,{KEY_ACTION},1"
CLEAR_KEYS = "all"


def key_from_message(message: Message) -> SecretDigits | None:
    """The key a digit-action event carries (the message's other secrets are wiped).

    None for any other message; its secrets are left to the usual routing.
    """
    event = message.event if message.event is not None else {}
    if event.get(KEY_ACTION) is None or event.get("Event-Name") is not None:
        return None
    key = message.secrets.pop("digits", None)
    message.wipe_secrets()
    return key if key is not None else SecretDigits("")


async def divert_keys(
    conn: EslConnection, on_key: Callable[[SecretDigits], None], *, timeout: float = 5.0
) -> None:
    """Route this call's digit-action events to `on_key`, who owns (and wipes) each key.

    The ESL connection has no public hook for extra events yet, so this wraps its event
    routing on that one instance.
    """
    original = conn._on_event

    def routed(message: Message) -> None:
        key = key_from_message(message)
        if key is None:
            original(message)
        else:
            on_key(key)

    conn._on_event = routed  # type: ignore[method-assign]
    reply = await conn._send(encode_command("divert_events on"), timeout)
    text = reply.headers.get("Reply-Text", "")
    if not text.startswith("+OK"):
        # Without diversion the key events stay in the session's queue: no card digit
        # leaves FreeSWITCH, but no field can be collected either.
        log.warning("call %s: divert_events refused: %s", conn.uuid, text[:80])
