"""The TLS certificates and keys a config names, checked before anything starts.

`payivr check-config` (payivr.feature_checks) runs this on every host: a certificate
that has expired or is not yet valid, a private key that is not the certificate's, or
a certificate not issued by the configured CA is reported with its config path, so
a TLS handshake never fails for a reason the operator could have been told earlier.
Reads the files; never prints or returns key material.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

# A certificate this close to its end is still valid but reported, so renewal
# happens before a trunk goes down.
RENEW_WITHIN = datetime.timedelta(days=14)


def _load_certificates(path: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(Path(path).read_bytes())


def check_tls_files(
    where: str,
    certificate: str,
    private_key: str,
    ca_certificate: str = "",
    *,
    now: datetime.datetime | None = None,
) -> list[str]:
    """Problems with one certificate/key (and CA), each as ``"<where>.<key>: ..."``."""
    moment = now or datetime.datetime.now(datetime.UTC)
    problems: list[str] = []
    try:
        chain = _load_certificates(certificate)
    except (OSError, ValueError) as exc:
        return [f"{where}.certificate: {certificate}: cannot be read as PEM ({_why(exc)})"]
    leaf = chain[0]
    subject = leaf.subject.rfc4514_string()
    if leaf.not_valid_after_utc <= moment:
        problems.append(
            f"{where}.certificate: {subject} expired on {leaf.not_valid_after_utc:%Y-%m-%d}"
        )
    elif leaf.not_valid_after_utc - moment < RENEW_WITHIN:
        problems.append(
            f"{where}.certificate: {subject} expires on {leaf.not_valid_after_utc:%Y-%m-%d}"
            f" (renew within {RENEW_WITHIN.days} days)"
        )
    if leaf.not_valid_before_utc > moment:
        problems.append(
            f"{where}.certificate: {subject} is not valid before "
            f"{leaf.not_valid_before_utc:%Y-%m-%d}"
        )
    try:
        key = serialization.load_pem_private_key(Path(private_key).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        problems.append(f"{where}.private_key: {private_key}: cannot be loaded ({_why(exc)})")
    else:
        if key.public_key() != leaf.public_key():
            problems.append(
                f"{where}.private_key: {private_key} is not the key of {certificate} ({subject})"
            )
    if ca_certificate:
        problems.extend(_check_chain(where, chain, ca_certificate, moment))
    return problems


def _check_chain(
    where: str, chain: list[x509.Certificate], ca_path: str, moment: datetime.datetime
) -> list[str]:
    try:
        anchors = _load_certificates(ca_path)
    except (OSError, ValueError) as exc:
        return [f"{where}.ca_certificate: {ca_path}: cannot be read as PEM ({_why(exc)})"]
    problems = [
        f"{where}.ca_certificate: {ca.subject.rfc4514_string()} expired on "
        f"{ca.not_valid_after_utc:%Y-%m-%d}"
        for ca in anchors
        if ca.not_valid_after_utc <= moment
    ]
    # Walk up from the leaf through the intermediates the certificate file carries
    # until a certificate is issued by one of the CA file's certificates.
    current = chain[0]
    for _ in range(len(chain)):
        if any(_issued_by(current, ca) for ca in anchors):
            return problems
        parent = next((c for c in chain[1:] if _issued_by(current, c)), None)
        if parent is None:
            break
        current = parent
    problems.append(
        f"{where}.certificate: {chain[0].subject.rfc4514_string()} is not issued by the CA"
        f" in {ca_path}"
    )
    return problems


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _why(exc: Exception) -> str:
    # OSError's text names the file and the reason; a parse error's first line is enough.
    return (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc).splitlines()[0]
