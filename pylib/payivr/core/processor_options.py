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

Problems = list[str]
_Check = Callable[[Mapping[str, object], str, Problems], None]


def validate_processor_options(processor: Mapping[str, object], path: str) -> list[str]:
    """Every problem of one merchant's processor section, as ``"path.key: message"``.

    ``processor`` holds ``type`` plus the type's own options (secrets already
    resolved); ``path`` is the section's dotted path, e.g. ``merchants.acme.processor``.
    An empty list means the section is usable.
    """
    problems: Problems = []
    kind = processor.get("type", "sandbox")
    if not isinstance(kind, str) or kind not in PROCESSOR_TYPES:
        problems.append(
            f"{path}.type: unknown processor type {kind!r} (known: {', '.join(PROCESSOR_TYPES)})"
        )
        return problems
    allowed, check = _TYPES[kind]
    for key in processor:
        if key not in allowed and key not in _COMMON:
            problems.append(f"{path}.{key}: unknown option for a {kind} processor")
    check(processor, path, problems)
    return problems


# -- sandbox --------------------------------------------------------------------------


_SANDBOX_KEYS = frozenset({"token_secret"})


def _check_sandbox(options: Mapping[str, object], path: str, problems: Problems) -> None:
    # The key of the sandbox's tokens (SPEC 8): without it a token is an unkeyed hash
    # of the PAN, which anyone can reverse by trying the few candidate card numbers.
    secret = _secret(options, "token_secret", path, problems)
    if secret is not None and len(secret.encode()) < MIN_TOKEN_KEY_BYTES:
        problems.append(
            f"{path}.token_secret: must have at least {MIN_TOKEN_KEY_BYTES} characters "
            "(e.g. `openssl rand -hex 32`)"
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


def _check_redsys(options: Mapping[str, object], path: str, problems: Problems) -> None:
    env = options.get("environment")
    if env is None:
        problems.append(f"{path}.environment: required: test or production")
    elif env not in REDSYS_ENVIRONMENTS:
        problems.append(f"{path}.environment: must be test or production")

    _digits(options, "merchant_code", 9, path, problems, what="the FUC (merchant code)")
    _digits(options, "terminal", 3, path, problems, what="the terminal number")

    version = options.get("signature_version", "HMAC_SHA256_V1")
    if version not in REDSYS_SIGNATURE_VERSIONS:
        problems.append(
            f"{path}.signature_version: must be one of {', '.join(REDSYS_SIGNATURE_VERSIONS)}"
        )
        version = None

    key = _secret(options, "secret_key", path, problems)
    if key:
        _check_redsys_key(key, version, f"{path}.secret_key", problems)

    if "endpoint" in options:
        _url(options["endpoint"], f"{path}.endpoint", problems)
    for flag in ("moto", "reverse_on_timeout"):
        if flag in options and not isinstance(options[flag], bool):
            problems.append(f"{path}.{flag}: must be true or false")
    cof = options.get("token_sale_cof_type", "C")
    if cof not in REDSYS_COF_TYPES:
        problems.append(f"{path}.token_sale_cof_type: must be one of {', '.join(REDSYS_COF_TYPES)}")
    _optional_str(options, "ca_file", path, problems)


def _check_redsys_key(key: str, version: object, path: str, problems: Problems) -> None:
    # The key as shown in Redsys' admin portal is Base64 of 24 bytes (a 3DES key) for
    # HMAC_SHA256_V1; the SHA-512 variants use its first 16 characters as an AES key.
    if version == "HMAC_SHA256_V1":
        try:
            raw = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            problems.append(f"{path}: not Base64 (the key as shown in the Redsys portal)")
            return
        if len(raw) != 24:
            problems.append(f"{path}: must decode to 24 bytes for HMAC_SHA256_V1")
    elif version is not None and len(key) < 16:
        problems.append(f"{path}: must have at least 16 characters for {version}")


# -- generic HTTP connector -------------------------------------------------------------

_HTTP_KEYS = frozenset({"url", "secret", "key_id", "reverse_on_timeout", "ca_file"})


def _check_http(options: Mapping[str, object], path: str, problems: Problems) -> None:
    if "url" not in options:
        problems.append(f"{path}.url: required: the connector's https:// endpoint")
    else:
        _url(options["url"], f"{path}.url", problems)
    key = _secret(options, "secret", path, problems)
    if key and len(key) < 16:
        problems.append(f"{path}.secret: must have at least 16 characters")
    key_id = options.get("key_id")
    if key_id is not None and (not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id)):
        problems.append(f"{path}.key_id: must match [A-Za-z0-9._-]{{1,64}}")
    if "reverse_on_timeout" in options and not isinstance(options["reverse_on_timeout"], bool):
        problems.append(f"{path}.reverse_on_timeout: must be true or false")
    _optional_str(options, "ca_file", path, problems)


# -- shared checks ----------------------------------------------------------------------


def _digits(
    options: Mapping[str, object],
    key: str,
    max_len: int,
    path: str,
    problems: Problems,
    *,
    what: str,
) -> None:
    value = options.get(key)
    if value is None:
        problems.append(f"{path}.{key}: required: {what}")
        return
    # YAML reads 999008881 as an int; both spellings are fine.
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not (
        text.isascii() and text.isdigit() and 1 <= len(text) <= max_len
    ):
        problems.append(f"{path}.{key}: must be 1 to {max_len} digits ({what})")


def _secret(options: Mapping[str, object], key: str, path: str, problems: Problems) -> str | None:
    """The resolved secret's value, or None (with a problem) when absent or inline."""
    value = options.get(key)
    if value is None:
        problems.append(f"{path}.{key}: required (a secret reference: env:NAME or file:KEY)")
        return None
    if isinstance(value, str):
        problems.append(
            f"{path}.{key}: must be a secret reference (env:NAME or file:KEY), never inline"
        )
        return None
    reveal = getattr(value, "value", None)
    if not callable(reveal):
        problems.append(f"{path}.{key}: must be a secret reference (env:NAME or file:KEY)")
        return None
    secret = reveal()
    # An unresolvable reference was already reported by the resolver: stay quiet.
    return secret if isinstance(secret, str) and secret else None


def _url(value: object, path: str, problems: Problems) -> None:
    if not isinstance(value, str):
        problems.append(f"{path}: must be a URL")
        return
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        problems.append(f"{path}: must be an https:// URL")
        return
    if parts.username or parts.password:
        problems.append(f"{path}: must not carry credentials (use the secret options)")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        problems.append(f"{path}: plain http:// is allowed only to a loopback address (tests)")


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback addresses: the only hosts allowed over plain http."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _optional_str(options: Mapping[str, object], key: str, path: str, problems: Problems) -> None:
    if key in options and (not isinstance(options[key], str) or not options[key]):
        problems.append(f"{path}.{key}: must be a file path")


_TYPES: dict[str, tuple[frozenset[str], _Check]] = {
    "sandbox": (_SANDBOX_KEYS, _check_sandbox),
    "redsys": (_REDSYS_KEYS, _check_redsys),
    "http": (_HTTP_KEYS, _check_http),
}
