"""The one SIP URI parser: payment headers, Referred-By, Refer-To, node and proxy URIs.

Only `sip:` and `sips:` URIs (RFC 3261 19.1), alone or as a name-addr with a display
name, angle brackets and header parameters (`"Agent 7" <sip:7@pbx>;tag=1`). What the
parser does not take is refused (None) rather than guessed at: a return target or an
allowlist check must never act on half of a URI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SipUri", "parse_sip_uri", "uri_host"]

_ADDR_SPEC = r"""
    (?P<scheme>sips?):
    (?:(?P<user>[^@;?<>\s"]+)@)?                    # optional user part
    (?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)     # IPv6 reference, IPv4 or name
    (?::(?P<port>\d{1,5}))?
    (?P<params>[;?][^<>\s"]*)?                      # URI parameters and headers
"""
_BARE = re.compile(rf"^\s*{_ADDR_SPEC}\s*$", re.VERBOSE | re.IGNORECASE)
_NAME_ADDR = re.compile(
    rf"""^\s*(?:"(?:[^"\\]|\\.)*"|[^<>"]*?)\s*     # display name: quoted or tokens
        <\s*{_ADDR_SPEC}\s*>
        \s*(?:;[^<>]*)?$                          # header parameters (;tag=...)
    """,
    re.VERBOSE | re.IGNORECASE,
)


@dataclass(frozen=True)
class SipUri:
    """A parsed `sip:`/`sips:` URI; `str()` gives it back without display name or brackets."""

    scheme: str  # "sip" or "sips", lowercase
    user: str | None
    host: str  # as written; an IPv6 reference keeps its brackets
    port: int | None
    params: str = ""  # ";transport=tcp?X=y" as written, "" when there are none

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}:{user}{self.host}{port}{self.params}"

    @property
    def hostname(self) -> str:
        """The host for comparisons and allowlists: lowercase, IPv6 without brackets."""
        return self.host.strip("[]").lower()

    @property
    def secure(self) -> bool:
        """TLS: a `sips:` URI, or `transport=tls` among its parameters."""
        if self.scheme == "sips":
            return True
        uri_params = self.params.split("?", 1)[0].lower().split(";")
        return "transport=tls" in uri_params


def parse_sip_uri(text: str, *, name_addr: bool = True) -> SipUri | None:
    """The SIP URI in `text`, or None when it is not one.

    `name_addr=False` takes the bare URI only (`sip:10.0.0.5:5080`): for settings,
    where a display name or brackets are a mistake. Ports must be 1-65535.
    """
    m = _BARE.match(text)
    if m is None and name_addr:
        m = _NAME_ADDR.match(text)
    if m is None:
        return None
    port = m.group("port")
    if port is not None and not 0 < int(port) < 65536:
        return None
    return SipUri(
        scheme=m.group("scheme").lower(),
        user=m.group("user"),
        host=m.group("host"),
        port=int(port) if port is not None else None,
        params=m.group("params") or "",
    )


def uri_host(text: str) -> str:
    """The lowercase host of a SIP URI or name-addr, '' when `text` is not one."""
    uri = parse_sip_uri(text)
    return uri.hostname if uri is not None else ""
