"""Redsys request and response signatures (HMAC_SHA256_V1, HMAC_SHA512_V1, HMAC_SHA512_V2).

Every Redsys signature is an HMAC over the exact `Ds_MerchantParameters` string sent or
received, keyed with a per-order key derived from the merchant's secret key and the
order id ("key diversification"), so a signature of one order says nothing about
another. The variants differ only in how that key is derived and how strings are
Base64-encoded:

- `HMAC_SHA256_V1`: key = 3DES-CBC (IV 0) of the order zero-padded to 8 bytes, with
  the Base64-decoded merchant key (24 bytes); HMAC-SHA256; parameters and signature
  in standard Base64.
- `HMAC_SHA512_V1` (REST manual): key = the Base64 *text* of AES-128-CBC (IV 0,
  PKCS#7) of the order, keyed with the merchant key's first 16 characters;
  HMAC-SHA512; standard Base64 parameters, signature in URL-safe Base64 keeping `=`.
- `HMAC_SHA512_V2` (redirection manual): key as SHA512_V1; HMAC-SHA512; parameters
  and signature in URL-safe Base64 without padding.

Worked examples from Redsys' manuals are reproduced in
tests/unit/processors/test_redsys_crypto.py; sources are listed in docs/processors.md.
Responses are verified with an encoding-insensitive, constant-time comparison, because
Redsys answers SHA-256 signatures in URL-safe Base64 while requests use the standard one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from enum import StrEnum

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:  # cryptography >= 43 moved 3DES to the "decrepit" namespace.
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - older cryptography (e.g. Debian's)
    TripleDES = algorithms.TripleDES  # type: ignore[misc,unused-ignore]


class SignatureVersion(StrEnum):
    """The `Ds_SignatureVersion` values payivr can speak (chosen per merchant)."""

    HMAC_SHA256_V1 = "HMAC_SHA256_V1"
    HMAC_SHA512_V1 = "HMAC_SHA512_V1"
    HMAC_SHA512_V2 = "HMAC_SHA512_V2"


class SignatureKeyError(ValueError):
    """The merchant key cannot be used with this signature version (never shows it)."""


def diversify_3des(merchant_key: str, order: str) -> bytes:
    """Per-order key of HMAC_SHA256_V1: 3DES-CBC of the order with the decoded key."""
    try:
        key = base64.b64decode(merchant_key, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureKeyError("the Redsys merchant key is not Base64") from None
    if len(key) != 24:
        raise SignatureKeyError("the Redsys merchant key must decode to 24 bytes") from None
    data = order.encode("utf-8")
    data += b"\0" * (-len(data) % 8)  # Redsys pads with zero bytes, not PKCS#5
    encryptor = Cipher(TripleDES(key), modes.CBC(b"\0" * 8)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def diversify_aes(merchant_key: str, order: str) -> bytes:
    """Per-order key of the SHA-512 versions: the Base64 *text* of AES-128-CBC(order).

    The AES key is the merchant key's first 16 characters (right-padded with "0" when
    shorter, as Redsys' own library does). The HMAC key is the Base64 text itself, not
    the raw ciphertext: the worked examples only match that way.
    """
    raw_key = merchant_key[:16].ljust(16, "0").encode("utf-8")
    if len(raw_key) != 16:
        raise SignatureKeyError("the Redsys merchant key must be ASCII for SHA-512")
    padder = padding.PKCS7(128).padder()
    data = padder.update(order.encode("utf-8")) + padder.finalize()
    encryptor = Cipher(algorithms.AES(raw_key), modes.CBC(b"\0" * 16)).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize())


def order_key(version: SignatureVersion, merchant_key: str, order: str) -> bytes:
    """The HMAC key for one order under ``version``."""
    if version is SignatureVersion.HMAC_SHA256_V1:
        return diversify_3des(merchant_key, order)
    return diversify_aes(merchant_key, order)


def _digest(version: SignatureVersion, key: bytes, merchant_parameters: str) -> bytes:
    algorithm = hashlib.sha256 if version is SignatureVersion.HMAC_SHA256_V1 else hashlib.sha512
    return hmac.new(key, merchant_parameters.encode("ascii"), algorithm).digest()


def sign(version: SignatureVersion, merchant_key: str, order: str, merchant_parameters: str) -> str:
    """`Ds_Signature` for an already encoded `Ds_MerchantParameters` string."""
    digest = _digest(version, order_key(version, merchant_key, order), merchant_parameters)
    if version is SignatureVersion.HMAC_SHA256_V1:
        return base64.b64encode(digest).decode("ascii")
    if version is SignatureVersion.HMAC_SHA512_V1:
        return base64.urlsafe_b64encode(digest).decode("ascii")
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _canonical(signature: str) -> str:
    # Same bytes whichever Base64 alphabet or padding the peer used.
    return signature.strip().replace("-", "+").replace("_", "/").rstrip("=")


def verify(
    version: SignatureVersion,
    merchant_key: str,
    order: str,
    merchant_parameters: str,
    signature: str,
) -> bool:
    """True when ``signature`` is Redsys' signature of ``merchant_parameters`` for ``order``."""
    expected = sign(version, merchant_key, order, merchant_parameters)
    return hmac.compare_digest(_canonical(expected).encode(), _canonical(signature).encode())


def encode_parameters(version: SignatureVersion, json_text: str) -> str:
    """`Ds_MerchantParameters` for a JSON text: URL-safe unpadded for V2, else standard."""
    raw = json_text.encode("utf-8")
    if version is SignatureVersion.HMAC_SHA512_V2:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    return base64.b64encode(raw).decode("ascii")


def decode_parameters(merchant_parameters: str) -> bytes:
    """Decode `Ds_MerchantParameters` in either Base64 alphabet, padded or not.

    Raises ValueError when it is not Base64.
    """
    text = merchant_parameters.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("Ds_MerchantParameters is not Base64") from None
