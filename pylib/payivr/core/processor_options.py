"""Validation of a merchant's `processor:` section, per processor type.

PURE: no I/O, no adapter imports (the config validator runs it, and Kamailio's
interpreter loads the config). The adapters in `payivr.processors` read the same
options; what is accepted here is documented in docs/processors.md.

Secret options (the Redsys merchant key, the HTTP connector key) must be references
(`env:NAME` / `file:KEY`); the config loader resolves those into objects with a
`value()` method before calling us. A plain string there means the secret was written
inline in the YAML, which is refused. No message here ever contains a secret.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from payivr.core.configread import Reader
from payivr.core.sandbox import MIN_TOKEN_KEY_BYTES

PROCESSOR_TYPES = ("sandbox", "redsys", "http")

# Keys every type accepts; `type` and `timeout_s` are read by the config loader itself.
_COMMON = frozenset({"type", "timeout_s"})

REDSYS_SIGNATURE_VERSIONS = ("HMAC_SHA256_V1", "HMAC_SHA512_V1", "HMAC_SHA512_V2")
REDSYS_ENVIRONMENTS = ("test", "production")
# Ds_Merchant_Cof_Type values (credential on file): Installments, Recurring,
# reautHorization, rEsubmission, Delayed, increMental, No show, Cardholder/other.
REDSYS_COF_TYPES = ("I", "R", "H", "E", "D", "M", "N", "C")

_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_LOOPBACK_NAMES = frozenset({"localhost"})

_Check = Callable[[Reader], None]


def validate_processor_options(processor: Mapping[str, object], path: str) -> list[str]:
    """Every problem of one merchant's processor section, as ``"path.key: message"``.

    ``processor`` holds ``type`` plus the type's own options (secrets already
    resolved); ``path`` is the section's dotted path, e.g. ``merchants.acme.processor``.
    An empty list means the section is usable.
    """
    problems: list[str] = []
    r = Reader(dict(processor), path, problems)
    kind = processor.get("type", "sandbox")
    if not isinstance(kind, str) or kind not in PROCESSOR_TYPES:
        r.problem("type", f"unknown processor type {kind!r} (known: {', '.join(PROCESSOR_TYPES)})")
        return problems
    allowed, check = _TYPES[kind]
    for key in r.keys():  # noqa: SIM118 (a Reader)
        if key not in allowed and key not in _COMMON:
            r.problem(key, f"unknown option for a {kind} processor")
    check(r)
    return problems


# -- sandbox --------------------------------------------------------------------------


_SANDBOX_KEYS = frozenset({"token_secret"})


def _check_sandbox(r: Reader) -> None:
    # The key of the sandbox's tokens (SPEC 8): without it a token is an unkeyed hash
    # of the PAN, which anyone can reverse by trying the few candidate card numbers.
    secret = _secret(r, "token_secret")
    if secret is not None and len(secret.encode()) < MIN_TOKEN_KEY_BYTES:
        r.problem(
            "token_secret",
            f"must have at least {MIN_TOKEN_KEY_BYTES} characters (e.g. `openssl rand -hex 32`)",
        )


# -- redsys ---------------------------------------------------------------------------

_REDSYS_KEYS = frozenset(
    {
        "environment",
        "endpoint",
        "merchant_code",
        "terminal",
        "secret_key",
        "signature_version",
        "moto",
        "reverse_on_timeout",
        "token_sale_cof_type",
        "ca_file",
    }
)


def _check_redsys(r: Reader) -> None:
    if not r.has("environment"):
        r.problem("environment", "required: test or production")
    else:
        r.choice("environment", REDSYS_ENVIRONMENTS, "test")

    _digits(r, "merchant_code", 9, what="the FUC (merchant code)")
    _digits(r, "terminal", 3, what="the terminal number")

    version: str | None = r.choice("signature_version", REDSYS_SIGNATURE_VERSIONS, "HMAC_SHA256_V1")
    if r.data.get("signature_version", version) not in REDSYS_SIGNATURE_VERSIONS:
        version = None  # reported above; the key cannot be checked against it

    key = _secret(r, "secret_key")
    if key:
        _check_redsys_key(r, key, version)

    if r.has("endpoint"):
        _url(r, "endpoint")
    for flag in ("moto", "reverse_on_timeout"):
        r.get(flag, bool, False)
    r.choice("token_sale_cof_type", REDSYS_COF_TYPES, "C")
    _optional_path(r, "ca_file")


def _check_redsys_key(r: Reader, key: str, version: str | None) -> None:
    # The key as shown in Redsys' admin portal is Base64 of 24 bytes (a 3DES key) for
    # HMAC_SHA256_V1; the SHA-512 variants use its first 16 characters as an AES key.
    if version == "HMAC_SHA256_V1":
        try:
            raw = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            r.problem("secret_key", "not Base64 (the key as shown in the Redsys portal)")
            return
        if len(raw) != 24:
            r.problem("secret_key", "must decode to 24 bytes for HMAC_SHA256_V1")
    elif version is not None and len(key) < 16:
        r.problem("secret_key", f"must have at least 16 characters for {version}")


# -- generic HTTP connector -------------------------------------------------------------

_HTTP_KEYS = frozenset({"url", "secret", "key_id", "reverse_on_timeout", "ca_file"})


def _check_http(r: Reader) -> None:
    if not r.has("url"):
        r.problem("url", "required: the connector's https:// endpoint")
    else:
        _url(r, "url")
    key = _secret(r, "secret")
    if key and len(key) < 16:
        r.problem("secret", "must have at least 16 characters")
    key_id = r.data.get("key_id")
    if key_id is not None and (not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id)):
        r.problem("key_id", "must match [A-Za-z0-9._-]{1,64}")
    r.get("reverse_on_timeout", bool, False)
    _optional_path(r, "ca_file")


# -- shared checks ----------------------------------------------------------------------


def _digits(r: Reader, key: str, max_len: int, *, what: str) -> None:
    value = r.data.get(key)
    if value is None:
        r.problem(key, f"required: {what}")
        return
    # YAML reads 999008881 as an int; both spellings are fine.
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not (
        text.isascii() and text.isdigit() and 1 <= len(text) <= max_len
    ):
        r.problem(key, f"must be 1 to {max_len} digits ({what})")


def _secret(r: Reader, key: str) -> str | None:
    """The resolved secret's value, or None (with a problem) when absent or inline."""
    value = r.data.get(key)
    if value is None:
        r.problem(key, "required (a secret reference: env:NAME or file:KEY)")
        return None
    if isinstance(value, str):
        r.problem(key, "must be a secret reference (env:NAME or file:KEY), never inline")
        return None
    reveal = getattr(value, "value", None)
    if not callable(reveal):
        r.problem(key, "must be a secret reference (env:NAME or file:KEY)")
        return None
    secret = reveal()
    # An unresolvable reference was already reported by the resolver: stay quiet.
    return secret if isinstance(secret, str) and secret else None


def _url(r: Reader, key: str) -> None:
    value = r.data.get(key)
    if not isinstance(value, str):
        r.problem(key, "must be a URL")
        return
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        r.problem(key, "must be an https:// URL")
        return
    if parts.username or parts.password:
        r.problem(key, "must not carry credentials (use the secret options)")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        r.problem(key, "plain http:// is allowed only to a loopback address (tests)")


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback addresses: the only hosts allowed over plain http."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _optional_path(r: Reader, key: str) -> None:
    r.get(key, str, "", check=bool, what="a file path")


_TYPES: dict[str, tuple[frozenset[str], _Check]] = {
    "sandbox": (_SANDBOX_KEYS, _check_sandbox),
    "redsys": (_REDSYS_KEYS, _check_redsys),
    "http": (_HTTP_KEYS, _check_http),
}
