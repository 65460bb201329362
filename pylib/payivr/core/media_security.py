"""Is the caller's media offer encrypted? The SRTP admission check, pure.

A merchant with `require_srtp: true` takes no call whose SDP offer would put the
caller's audio, and the RFC 2833 events card digits travel as, on the wire in clear.
The check reads only the offer in the INVITE (payivr requires early offer, SPEC
section 4), so it is decided before anything is stored or relayed.

An audio stream is encrypted when its transport is SRTP with its keys agreed one of
the two ways payivr's media engines speak:

- SDES (RFC 4568): `RTP/SAVP` or `RTP/SAVPF` with at least one `a=crypto:` line
  in that media section (the keys travel in the SDP, protected by SIP over TLS);
- DTLS-SRTP (RFC 5763/5764): `UDP/TLS/RTP/SAVP(F)` with an `a=fingerprint:` line
  at session or media level.

A disabled stream (port 0) carries nothing and is not judged.
"""

from __future__ import annotations

from dataclasses import dataclass

from payivr.core.errors import not_acceptable

SDES_PROTOS = frozenset({"RTP/SAVP", "RTP/SAVPF"})
DTLS_PROTOS = frozenset({"UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"})


@dataclass(frozen=True)
class MediaOffer:
    """One `m=` section of an offer: what the admission check needs of it."""

    kind: str
    port: int
    proto: str
    has_crypto: bool
    has_fingerprint: bool


def media_offers(sdp: str) -> list[MediaOffer]:
    """The offer's media sections, in order (lines before the first `m=` are the
    session level; a multipart body's other parts have no `m=` or `a=` lines)."""
    session: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            sections.append((line[2:], []))
        elif sections:
            sections[-1][1].append(line)
        else:
            session.append(line)
    session_fingerprint = any(a.startswith("a=fingerprint:") for a in session)
    offers = []
    for media, attributes in sections:
        parts = media.split()
        port = parts[1].split("/", 1)[0] if len(parts) > 1 else ""
        offers.append(
            MediaOffer(
                kind=parts[0].lower() if parts else "",
                port=int(port) if port.isdigit() else -1,
                proto=parts[2].upper() if len(parts) > 2 else "",
                has_crypto=any(a.startswith("a=crypto:") for a in attributes),
                has_fingerprint=session_fingerprint
                or any(a.startswith("a=fingerprint:") for a in attributes),
            )
        )
    return offers


def insecure_reason(offer: MediaOffer) -> str | None:
    """Why this stream would be sent in clear, or None when it is SRTP with keying."""
    if offer.port == 0:
        return None
    if offer.proto in SDES_PROTOS:
        return None if offer.has_crypto else f"{offer.proto} without a=crypto (no SDES keys)"
    if offer.proto in DTLS_PROTOS:
        return None if offer.has_fingerprint else f"{offer.proto} without a=fingerprint"
    return f"{offer.proto or 'no transport'} is plain RTP"


def check_srtp(sdp: str, merchant_id: str) -> None:
    """Raise a 488 (SPEC section 4) unless every active stream of the offer is SRTP.

    The Warning names the first stream in clear and what to offer instead, so the
    integrator knows what to change; it carries nothing from the request but the
    transport token.
    """
    offers = media_offers(sdp)
    for offer in offers:
        reason = insecure_reason(offer)
        if reason is not None:
            raise not_acceptable(
                "SDP",
                f"merchant {merchant_id} requires SRTP: m={offer.kind} {reason}; offer "
                "RTP/SAVP with a=crypto (SDES) or UDP/TLS/RTP/SAVP with a=fingerprint",
            )
    if not any(o.port != 0 for o in offers):
        raise not_acceptable("SDP", f"merchant {merchant_id} requires SRTP: no active stream")
