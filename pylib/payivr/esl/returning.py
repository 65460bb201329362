"""The return of the call with its result headers (SPEC 7).

* `hangup`: the headers go on the BYE (`sip_bye_h_X-Pay-*`), signed with the dialog's
  Call-ID, then the call is hung up.
* `agent` / a URI: the headers go on the REFER (`deflect`, in the same dialog, same
  Call-ID), where the contact center accepts REFER; otherwise (or when the REFER
  fails) on the INVITE of a bridge through Kamailio, whose Call-ID payivr chooses
  (`sip_invite_call_id`) so it can sign it.

FreeSWITCH copies every `sip_h_*` variable onto REFERs and outgoing INVITEs, and the
inbound `X-*` headers arrive as exactly such variables (transcripts: the B leg's INVITE
carried X-Pay-Merchant, X-Pay-Order, X-Payivr-Session). So before a transfer every
`sip_h_X-*` variable that is not one of this result's headers is removed: no request
header, no stale or forged X-Pay-Result, goes back to the contact center.
"""

from __future__ import annotations

import asyncio
import logging
import uuid as uuidlib
from collections.abc import Mapping, Sequence

from payivr.core.config import ReturnSettings
from payivr.esl.channel import CallChannel

log = logging.getLogger("payivr.esl")

REQUEST_HEADER_VARIABLE = "variable_sip_h_"
# Where mod_sofia puts the final status of the REFER it sent (sofia.c).
REFER_STATUS_VARIABLE = "sip_refer_status_code"
# How long a REFER may take to be answered before the call is bridged instead.
REFER_WAIT_S = 8.0


def dialog_call_id(channel: CallChannel, fallback: str) -> str:
    """The Call-ID of the dialog FreeSWITCH has with the contact center."""
    return channel.channel_data.get("variable_sip_call_id") or fallback


def bye_variables(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    return {f"sip_bye_h_{name}": value for name, value in headers}


def stale_request_headers(
    channel_data: Mapping[str, str], keep: Sequence[tuple[str, str]]
) -> list[str]:
    """`sip_h_X-*` variables that must not ride on the transfer."""
    ours = {name.lower() for name, _ in keep}
    stale = []
    for key in channel_data:
        if key.startswith(REQUEST_HEADER_VARIABLE):
            header = key[len(REQUEST_HEADER_VARIABLE) :]
            if header.lower().startswith("x-") and header.lower() not in ours:
                stale.append("sip_h_" + header)
    return stale


def bridge_dial_string(target: str, settings: ReturnSettings, call_id: str) -> str:
    """`{sip_invite_call_id=...}sofia/<profile>/<target>[;fs_path=<kamailio>]`.

    payivr picks the new leg's Call-ID so it can sign the headers with it (SPEC 3:
    the returning call's Call-ID); `fs_path` routes the INVITE through Kamailio.
    """
    # mod_sofia takes the URI with its scheme (a sips: target stays on TLS).
    dial = f"{{sip_invite_call_id={call_id}}}sofia/{settings.sofia_profile}/{target}"
    if settings.proxy:
        dial += f";fs_path={settings.proxy}"
    return dial


def new_call_id() -> str:
    return f"{uuidlib.uuid4()}@payivr"


async def hang_up_with(
    channel: CallChannel, headers: Sequence[tuple[str, str]], settings: ReturnSettings
) -> str:
    await channel.set_variables(bye_variables(headers))
    await channel.hangup(settings.hangup_cause)
    return "hangup"


async def transfer_by_refer(
    channel: CallChannel,
    target: str,
    headers: Sequence[tuple[str, str]],
    *,
    wait_s: float = REFER_WAIT_S,
    poll_s: float = 0.1,
) -> bool:
    """REFER the caller to `target`; True when the far end accepted it (2xx) and our
    leg is hung up, False when it refused or did not answer (the call is still ours).

    mod_sofia's deflect, left to itself, waits for the REFER's NOTIFY and then hangs
    the channel up whatever the answer (mod_sofia.c, SWITCH_MESSAGE_INDICATE_DEFLECT):
    a refused REFER would drop the caller. With `sip_refer_continue_after_reply` it
    only sends the REFER; its final status arrives in `sip_refer_status_code`
    (sofia_handle_sip_r_refer), which this polls.
    """
    await channel.unset_variables(
        [*stale_request_headers(channel.channel_data, headers), REFER_STATUS_VARIABLE]
    )
    values = {f"sip_h_{name}": value for name, value in headers}
    values["sip_refer_continue_after_reply"] = "true"
    await channel.set_variables(values)
    await channel.execute("deflect", target)
    status = await _refer_status(channel, wait_s, poll_s)
    if status is not None and 200 <= status < 300:
        # Accepted: the contact center takes the call to the target; our leg ends.
        await channel.hangup("BLIND_TRANSFER")
        return True
    log.warning("call %s: REFER not accepted (%s)", channel.uuid, status or "no answer")
    return channel.hungup


async def _refer_status(channel: CallChannel, wait_s: float, poll_s: float) -> int | None:
    """The REFER's final status code, or None if none came within `wait_s`."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while not channel.hungup:
        reply = (await channel.api(f"uuid_getvar {channel.uuid} {REFER_STATUS_VARIABLE}")).strip()
        if reply.isdigit() and int(reply) >= 200:
            return int(reply)
        if asyncio.get_running_loop().time() >= deadline:
            return None
        await asyncio.sleep(poll_s)
    return None


async def transfer_by_bridge(
    channel: CallChannel,
    target: str,
    headers: Sequence[tuple[str, str]],
    settings: ReturnSettings,
    call_id: str,
) -> None:
    await channel.unset_variables(stale_request_headers(channel.channel_data, headers))
    values = {f"sip_h_{name}": value for name, value in headers}
    # No digit the caller keys from here on reaches the contact center's leg.
    values["bridge_filter_dtmf"] = "true"
    await channel.set_variables(values)
    await channel.execute("bridge", bridge_dial_string(target, settings, call_id))
    # The bridge is over (the other side hung up, or it failed): end our leg.
    await channel.hangup(settings.hangup_cause)
