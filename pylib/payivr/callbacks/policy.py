"""Where a callback may go, checked again at send time (not only at Kamailio).

Two checks, each failing into a stable reason id that ends up on the dead entry:
- the URL: `https`, or `http` only where the merchant allows it; no user:password;
  the host in the merchant's callback allowlist (`host-not-allowed`, ...);
- the address: every address the host resolves to, and then the address actually
  connected to (client.py, before any byte or TLS handshake goes out), must be public
  unless the merchant allows private addresses (`address-not-allowed`). Checking the
  connected peer closes the gap a DNS answer that changes between the check and the
  connection would open.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit

if TYPE_CHECKING:
    from payivr.core.config import MerchantConfig


class NotAllowed(Exception):
    """A callback that must not be sent; `reason` is a stable id, `detail` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class CallbackPolicy:
    """What one merchant's callbacks may do; `secret` signs them."""

    secret: bytes
    hosts: frozenset[str]
    allow_http: bool = False
    allow_private: bool = False

    @classmethod
    def from_merchant(cls, merchant: MerchantConfig) -> CallbackPolicy:
        """The policy of a merchant of the config."""
        return cls(
            secret=merchant.callback_secret.encode() if merchant.callback_secret else b"",
            hosts=frozenset(h.lower() for h in merchant.callback_hosts),
            allow_http=merchant.allow_http_callbacks,
            allow_private=merchant.allow_private_callback_addresses,
        )


def check_url(url: str, policy: CallbackPolicy) -> SplitResult:
    """Raise NotAllowed unless the URL's scheme and host pass the merchant's policy."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise NotAllowed("bad-url", "not a valid URL") from None
    if parts.scheme == "http":
        if not policy.allow_http:
            raise NotAllowed("scheme-not-allowed", "http:// is not allowed for this merchant")
    elif parts.scheme != "https":
        raise NotAllowed("scheme-not-allowed", f"scheme {parts.scheme!r} is not https")
    if parts.username is not None or parts.password is not None:
        raise NotAllowed("bad-url", "credentials in the URL are not allowed")
    host = (parts.hostname or "").lower()
    if not host:
        raise NotAllowed("bad-url", "no host")
    if host not in policy.hosts:
        raise NotAllowed("host-not-allowed", f"{host} is not in the callback allowlist")
    if port == 0:
        raise NotAllowed("bad-url", "port 0")
    return parts


def address_allowed(address: str, allow_private: bool) -> bool:
    """Is connecting to this IP address allowed? Public only, unless private is allowed."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_unspecified:
        return False
    if allow_private:
        return True
    # is_global excludes loopback, RFC 1918, link-local, shared (100.64/10), reserved.
    return ip.is_global


def check_addresses(host: str, addresses: list[str], allow_private: bool) -> None:
    """Raise NotAllowed if any address a host resolved to is not allowed.

    All of them, not just the first: the connection may try any.
    """
    for address in addresses:
        if not address_allowed(address, allow_private):
            raise NotAllowed("address-not-allowed", f"{host} resolves to {address}")
