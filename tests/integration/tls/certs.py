"""Test certificates made with `cryptography`: a CA, certificates it issues, and
certificates that are wrong in one way each (expired, another key, another CA)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NOW = datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Issued:
    certificate: Path
    private_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


class CertAuthority:
    """A CA on disk that issues leaf certificates for 127.0.0.1."""

    def __init__(self, directory: Path, name: str = "payivr test CA") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.path = directory / f"{name.replace(' ', '-')}.crt"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        cn: str,
        *,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        client: bool = False,
        server_and_client: bool = False,
    ) -> Issued:
        """A leaf certificate for TLS servers (default), clients (`client`), or both
        (`server_and_client`: a SIP element that accepts and opens TLS connections)."""
        key = ec.generate_private_key(ec.SECP256R1())
        usage = x509.oid.ExtendedKeyUsageOID
        purposes = [usage.CLIENT_AUTH if client else usage.SERVER_AUTH]
        if server_and_client:
            purposes = [usage.SERVER_AUTH, usage.CLIENT_AUTH]
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - datetime.timedelta(days=1))
            .not_valid_after(not_after or NOW + datetime.timedelta(days=90))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName(cn), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        stem = self.directory / cn
        crt = stem.with_suffix(".crt")
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return Issued(crt, _write_key(key, stem.with_suffix(".key")))

    def other_key(self, name: str) -> Path:
        """A private key that belongs to no certificate."""
        return _write_key(ec.generate_private_key(ec.SECP256R1()), self.directory / name)
