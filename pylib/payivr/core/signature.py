"""Signatures of SPEC section 3 (requests and results) and section 7 (callbacks).

Request/result: HMAC-SHA256 over the canonical string, sent as `v1=<hex>`:
    every signed X-Pay-* header present, as `lowercase-name:value`, sorted by name,
    joined by "\\n", then "\\n", then the SIP Call-ID.
Callback: `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

SIGNATURE_HEADER = "x-pay-signature"
SCHEME = "v1"


def canonical_string(fields: Mapping[str, str], call_id: str, signed: Iterable[str]) -> str:
    """The string that is signed. `signed` lists the lowercase header names that count.

    Names are compared case-insensitively, values are trimmed, and empty values are
    absent (as the SPEC says of every header).
    """
    allowed = {name.lower() for name in signed} - {SIGNATURE_HEADER}
    pairs = sorted(
        (name.lower(), value.strip())
        for name, value in fields.items()
        if name.lower() in allowed and value.strip()
    )
    return "".join(f"{name}:{value}\n" for name, value in pairs) + call_id


def sign(secret: bytes, fields: Mapping[str, str], call_id: str, signed: Iterable[str]) -> str:
    """`v1=<hex>` for the given header fields and Call-ID."""
    message = canonical_string(fields, call_id, signed).encode("utf-8")
    return f"{SCHEME}=" + hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify(
    secret: bytes,
    fields: Mapping[str, str],
    call_id: str,
    signature: str,
    signed: Iterable[str],
) -> bool:
    """Constant-time check of a `v1=<hex>` signature."""
    expected = sign(secret, fields, call_id, signed)
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


def timestamp_fresh(timestamp: int, now: float, window_s: int) -> bool:
    """Inside the window on either side of now (clocks of CTI hosts drift)."""
    return abs(now - timestamp) <= window_s


def sign_callback(secret: bytes, body: bytes, timestamp: int) -> str:
    """The `X-Payivr-Signature` header value of a callback."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},{SCHEME}={mac}"


def verify_callback(
    secret: bytes, body: bytes, header: str, now: float | None = None, window_s: int | None = None
) -> bool:
    """Check a callback signature header (the receiver's side; `payivr callbacks verify`).

    With `now` and `window_s`, a signature older than the window is refused too.
    Retried deliveries are signed again at send time, so a window is safe to apply.
    """
    parts: dict[str, str] = {}
    for piece in header.split(","):
        key, sep, value = piece.strip().partition("=")
        if sep:
            parts[key] = value
    t, mac = parts.get("t", ""), parts.get(SCHEME, "")
    if not t.isdigit() or not mac:
        return False
    if now is not None and window_s is not None and not timestamp_fresh(int(t), now, window_s):
        return False
    return hmac.compare_digest(sign_callback(secret, body, int(t)), header.strip())
