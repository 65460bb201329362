"""Tiny, pure helpers for the SIP URIs found in payment headers."""

from __future__ import annotations

import re

_URI = re.compile(
    r"""^\s*(?:"[^"]*"\s*|[^<"]*?)?<?\s*          # optional display name and '<'
        (?P<scheme>sips?):
        (?:(?P<user>[^@;?>\s]+)@)?               # optional user part
        (?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)
        (?::(?P<port>\d{1,5}))?
        (?P<rest>[;?][^>\s]*)?
        \s*>?\s*(?:;.*)?$""",
    re.VERBOSE,
)


def parse_sip_uri(value: str) -> tuple[str, str] | None:
    """(bare URI without display name or brackets, lowercase host), or None if not a SIP URI.

    Accepts `sip:queue@pbx.example.com:5060;transport=tcp`, `<sips:agent@10.0.0.5>` and
    `"Agent 7" <sip:7@pbx>` (Referred-By). The host is returned without brackets.
    """
    m = _URI.match(value)
    if m is None:
        return None
    port = m.group("port")
    if port is not None and not 0 < int(port) < 65536:
        return None
    uri = m.group("scheme") + ":"
    if m.group("user"):
        uri += m.group("user") + "@"
    uri += m.group("host") + (f":{port}" if port else "") + (m.group("rest") or "")
    return uri, m.group("host").strip("[]").lower()
