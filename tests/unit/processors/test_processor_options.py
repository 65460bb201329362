"""Config validation of each processor type (payivr.core.processor_options)."""

from __future__ import annotations

import pytest

from payivr.core.configread import Secret
from payivr.core.processor_options import is_loopback_host, validate_processor_options

PATH = "merchants.acme.processor"
REDSYS_TEST_KEY = "sq7HjrUOBfKmC576ILgskD5srU870gJ7"  # Redsys' public test key


def redsys(**overrides: object) -> dict[str, object]:
    options: dict[str, object] = {
        "type": "redsys",
        "environment": "test",
        "merchant_code": 999008881,
        "terminal": "1",
        "secret_key": Secret(REDSYS_TEST_KEY, "file:acme_redsys"),
    }
    options.update(overrides)
    return {k: v for k, v in options.items() if v is not None}


def http(**overrides: object) -> dict[str, object]:
    options: dict[str, object] = {
        "type": "http",
        "url": "https://gateway.example.com/payivr",
        "secret": Secret("0123456789abcdef0123", "env:ACME_CONNECTOR"),
    }
    options.update(overrides)
    return {k: v for k, v in options.items() if v is not None}


SANDBOX_KEY = Secret("s" * 32, "file:sandbox_token")


def test_sandbox_needs_only_its_token_secret() -> None:
    options = {"type": "sandbox", "timeout_s": 2, "token_secret": SANDBOX_KEY}
    assert validate_processor_options(options, PATH) == []


@pytest.mark.parametrize(
    ("token_secret", "problem"),
    [
        (None, "token_secret: required (a secret reference: env:NAME or file:KEY)"),
        ("inline-secret-" * 4, "token_secret: must be a secret reference"),
        (Secret("short", "env:SANDBOX"), "token_secret: must have at least 32 characters"),
    ],
)
def test_sandbox_token_secret_is_a_long_enough_reference(
    token_secret: object, problem: str
) -> None:
    options = {"type": "sandbox", "token_secret": token_secret}
    (found,) = validate_processor_options({k: v for k, v in options.items() if v}, PATH)
    assert found.startswith(f"{PATH}.{problem}")


def test_sandbox_rejects_unknown_options() -> None:
    options = {"type": "sandbox", "url": "x", "token_secret": SANDBOX_KEY}
    assert validate_processor_options(options, PATH) == [
        f"{PATH}.url: unknown option for a sandbox processor"
    ]


def test_unknown_type() -> None:
    (problem,) = validate_processor_options({"type": "stripe"}, PATH)
    assert problem.startswith(f"{PATH}.type: unknown processor type 'stripe'")


@pytest.mark.parametrize("version", ["HMAC_SHA256_V1", "HMAC_SHA512_V1", "HMAC_SHA512_V2"])
def test_redsys_complete_section(version: str) -> None:
    assert validate_processor_options(redsys(signature_version=version), PATH) == []


def test_redsys_lists_every_problem_with_its_path() -> None:
    problems = validate_processor_options(
        {
            "type": "redsys",
            "merchant_code": "99900888A",
            "terminal": 1234,
            "secret_key": REDSYS_TEST_KEY,  # inline: refused
            "signature_version": "SHA1",
            "endpoint": "http://sis-t.redsys.es/sis/rest/trataPeticionREST",
            "moto": "yes",
            "token_sale_cof_type": "X",
            "colour": "blue",
        },
        PATH,
    )
    keys = sorted(p.split(":", 1)[0] for p in problems)
    assert keys == sorted(
        f"{PATH}.{k}"
        for k in (
            "colour",
            "environment",
            "merchant_code",
            "terminal",
            "secret_key",
            "signature_version",
            "endpoint",
            "moto",
            "token_sale_cof_type",
        )
    )
    assert not any(REDSYS_TEST_KEY in p for p in problems)


def test_redsys_sha256_key_must_be_a_3des_key() -> None:
    (problem,) = validate_processor_options(redsys(secret_key=Secret("c2hvcnQ=", "env:K")), PATH)
    assert problem == f"{PATH}.secret_key: must decode to 24 bytes for HMAC_SHA256_V1"
    (problem,) = validate_processor_options(redsys(secret_key=Secret("not base64!", "env:K")), PATH)
    assert "not Base64" in problem


def test_redsys_sha512_key_needs_16_characters() -> None:
    short = redsys(signature_version="HMAC_SHA512_V2", secret_key=Secret("abc", "env:K"))
    assert validate_processor_options(short, PATH) == [
        f"{PATH}.secret_key: must have at least 16 characters for HMAC_SHA512_V2"
    ]


def test_redsys_unresolved_secret_is_not_reported_twice() -> None:
    # The resolver already said "environment variable X is not set".
    assert validate_processor_options(redsys(secret_key=Secret("", "env:MISSING")), PATH) == []


def test_redsys_loopback_endpoint_for_tests() -> None:
    options = redsys(endpoint="http://127.0.0.1:8999/sis/rest/trataPeticionREST")
    assert validate_processor_options(options, PATH) == []


def test_http_complete_section() -> None:
    assert validate_processor_options(http(key_id="acme-1", reverse_on_timeout=False), PATH) == []


def test_http_problems() -> None:
    problems = validate_processor_options(
        {"type": "http", "url": "ftp://x", "secret": Secret("short", "env:S"), "key_id": "a b"},
        PATH,
    )
    assert problems == [
        f"{PATH}.url: must be an https:// URL",
        f"{PATH}.secret: must have at least 16 characters",
        f"{PATH}.key_id: must match [A-Za-z0-9._-]{{1,64}}",
    ]
    problems = validate_processor_options({"type": "http"}, PATH)
    assert [p.split(":")[0] for p in problems] == [f"{PATH}.url", f"{PATH}.secret"]


def test_http_url_with_credentials_is_refused() -> None:
    (problem,) = validate_processor_options(http(url="https://u:p@gw.example.com/"), PATH)
    assert "credentials" in problem


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("10.0.0.1", False),
        ("example.com", False),
    ],
)
def test_loopback_hosts(host: str, expected: bool) -> None:
    assert is_loopback_host(host) is expected
