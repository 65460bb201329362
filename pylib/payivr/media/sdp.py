"""The ng parameters for the agent's leg, shared by Kamailio's script and payivr.

Kamailio's `rtpengine` module passes the same flags as a string (kamailio_flags());
payivr's tests and benchmark send them as an ng dict. The FreeSWITCH side of the
agent's leg is labelled, so that payivr can name it in `block DTMF` with the SIP
Call-ID alone (rtpengine finds the monologue by label; payivr never sees the tags).
"""

from __future__ import annotations

from collections.abc import Mapping

# FreeSWITCH marks the INVITE of the agent's leg with this header (the agent service's
# dial string); Kamailio puts that leg's media through rtpengine and removes it.
AGENT_LEG_HEADER = "X-Payivr-Leg"
FS_LABEL = "payivr-fs"  # the side that sends the caller's audio towards the agent
AGENT_LABEL = "payivr-agent"

OFFER_FLAGS: Mapping[str, str | list[str]] = {"label": FS_LABEL, "replace": ["origin"]}
ANSWER_FLAGS: Mapping[str, str | list[str]] = {"label": AGENT_LABEL, "replace": ["origin"]}
# A re-INVITE (from either side): a label would rename the sender's side.
UPDATE_FLAGS: Mapping[str, str | list[str]] = {"replace": ["origin"]}


def kamailio_flags(flags: Mapping[str, str | list[str]]) -> str:
    """The same flags in the rtpengine module's string syntax (`label=x replace-origin`)."""
    words: list[str] = []
    for key, value in flags.items():
        if isinstance(value, list):
            words.extend(f"{key}-{item}" for item in value)
        else:
            words.append(f"{key}={value}")
    return " ".join(words)
