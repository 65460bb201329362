"""Redsys signatures against the worked examples published in Redsys' manuals."""

from __future__ import annotations

import base64
import json

import pytest

from payivr.processors.redsys.crypto import (
    SignatureKeyError,
    SignatureVersion,
    decode_parameters,
    diversify_3des,
    diversify_aes,
    encode_parameters,
    sign,
    verify,
)

# Redsys' public test key (test terminal 999008881), used by every manual's example.
TEST_KEY = "sq7HjrUOBfKmC576ILgskD5srU870gJ7"
ORDER = "1234567890"

# "Firmar una operación" / redirection manual worked example (HMAC_SHA512_V2): the
# parameters in URL-safe Base64 without padding.
MANUAL_PARAMS_V2 = (
    "eyJEU19NRVJDSEFOVF9BTU9VTlQiOiI5OTkiLCJEU19NRVJDSEFOVF9PUkRFUiI6IjEyMzQ1Njc4OTAi"
    "LCJEU19NRVJDSEFOVF9NRVJDSEFOVENPREUiOiI5OTkwMDg4ODEiLCJEU19NRVJDSEFOVF9DVVJSRU5DWSI6"
    "Ijk3OCIsIkRTX01FUkNIQU5UX1RSQU5TQUNUSU9OVFlQRSI6IjAiLCJEU19NRVJDSEFOVF9URVJNSU5BTCI6"
    "IjEiLCJEU19NRVJDSEFOVF9NRVJDSEFOVFVSTCI6Imh0dHA6XC9cL3d3dy5wcnVlYmEuY29tXC91cmxOb3Rp"
    "ZmljYWNpb24ucGhwIiwiRFNfTUVSQ0hBTlRfVVJMT0siOiJodHRwOlwvXC93d3cucHJ1ZWJhLmNvbVwvdXJs"
    "T0sucGhwIiwiRFNfTUVSQ0hBTlRfVVJMS08iOiJodHRwOlwvXC93d3cucHJ1ZWJhLmNvbVwvdXJsS08ucGhw"
    "In0"
)
MANUAL_SIGNATURE_V2 = (
    "Vjo02eSWq249IeZZp3R-ArFnGLhKY0OuzDDlx1BuVtZDC2yhczA7_11uZhsYzLZBCMFAz8u8uzGDX3AErHKmmw"
)
# REST manual worked example (HMAC_SHA512_V1): the same parameters in standard Base64.
MANUAL_PARAMS_V1 = MANUAL_PARAMS_V2 + "="
MANUAL_SIGNATURE_V1 = (
    "sNshBlGLKfv04FBXKt_lMaueFt_yA7VZ1Mw4USg4HiLehAdiQ8xUt5pEM-oHvXCBNZJKZkk7ogzPjhxDW3hAEQ=="
)


def test_3des_diversified_key_of_the_manual() -> None:
    key = diversify_3des(TEST_KEY, ORDER)
    assert base64.b64encode(key).decode() == "ntVrJPxp2xlsetWVajPl0g=="


def test_aes_diversified_key_of_the_manual() -> None:
    assert diversify_aes(TEST_KEY, ORDER) == b"RWt3/IPTzYRMXsQtkiGRKg=="


def test_sha512_v2_signature_of_the_manual() -> None:
    signature = sign(SignatureVersion.HMAC_SHA512_V2, TEST_KEY, ORDER, MANUAL_PARAMS_V2)
    assert signature == MANUAL_SIGNATURE_V2


def test_sha512_v1_signature_of_the_rest_manual() -> None:
    signature = sign(SignatureVersion.HMAC_SHA512_V1, TEST_KEY, ORDER, MANUAL_PARAMS_V1)
    assert signature == MANUAL_SIGNATURE_V1


def test_manual_parameters_decode_to_the_documented_request() -> None:
    params = json.loads(decode_parameters(MANUAL_PARAMS_V2))
    assert params["DS_MERCHANT_ORDER"] == ORDER
    assert params["DS_MERCHANT_AMOUNT"] == "999"
    assert params["DS_MERCHANT_MERCHANTCODE"] == "999008881"
    assert decode_parameters(MANUAL_PARAMS_V1) == decode_parameters(MANUAL_PARAMS_V2)


def test_sha256_signature_is_hmac_of_the_params_with_the_3des_key() -> None:
    # Independent recomputation of the documented algorithm (3DES key -> HMAC-SHA256).
    import hashlib
    import hmac

    expected = base64.b64encode(
        hmac.new(
            diversify_3des(TEST_KEY, ORDER), MANUAL_PARAMS_V1.encode(), hashlib.sha256
        ).digest()
    ).decode()
    assert sign(SignatureVersion.HMAC_SHA256_V1, TEST_KEY, ORDER, MANUAL_PARAMS_V1) == expected


# HMAC_SHA256_V1 end to end: the vector shipped with the ports of Redsys' own PHP API
# (node-redsys-api, go-redsys-api tests): key, order "1", parameters, signature.
PORT_KEY = "Mk9m98IfEblmPfrpsawt7BmxObt98Jev"
PORT_PARAMS = (
    "eyJEU19NRVJDSEFOVF9BTU9VTlQiOiIxNDUiLCJEU19NRVJDSEFOVF9PUkRFUiI6IjEiLCJEU19NRVJDSEFO"
    "VF9NRVJDSEFOVENPREUiOiI5OTkwMDg4ODEiLCJEU19NRVJDSEFOVF9DVVJSRU5DWSI6Ijk3OCIsIkRTX01F"
    "UkNIQU5UX1RSQU5TQUNUSU9OVFlQRSI6IjAiLCJEU19NRVJDSEFOVF9URVJNSU5BTCI6Ijg3MSIsIkRTX01F"
    "UkNIQU5UX01FUkNIQU5UVVJMIjoiIiwiRFNfTUVSQ0hBTlRfVVJMT0siOiIiLCJEU19NRVJDSEFOVF9VUkxL"
    "TyI6IiJ9"
)


def test_sha256_v1_signature_of_the_php_api_ports() -> None:
    assert base64.b64encode(diversify_3des(PORT_KEY, "1")).decode() == "Lr6bLJYWKrk="
    signature = sign(SignatureVersion.HMAC_SHA256_V1, PORT_KEY, "1", PORT_PARAMS)
    assert signature == "3TEI5WyvHf1D/whByt1ENgFH/HPIP9UFuB6LkCYgj+E="


@pytest.mark.parametrize("version", list(SignatureVersion))
def test_verify_accepts_either_base64_alphabet_and_rejects_tampering(
    version: SignatureVersion,
) -> None:
    params = encode_parameters(version, '{"Ds_Order":"1234567890","Ds_Response":"0000"}')
    signature = sign(version, TEST_KEY, ORDER, params)
    url_safe = signature.replace("+", "-").replace("/", "_").rstrip("=")
    standard = url_safe.replace("-", "+").replace("_", "/")
    assert verify(version, TEST_KEY, ORDER, params, url_safe)
    assert verify(version, TEST_KEY, ORDER, params, standard)
    assert not verify(version, TEST_KEY, "1234567891", params, signature)
    assert not verify(version, TEST_KEY, ORDER, params + "x", signature)
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert not verify(version, TEST_KEY, ORDER, params, flipped)


def test_v2_parameters_are_url_safe_without_padding() -> None:
    text = encode_parameters(SignatureVersion.HMAC_SHA512_V2, '{"a":"~~~?"}')
    assert "=" not in text and "+" not in text and "/" not in text
    assert decode_parameters(text) == b'{"a":"~~~?"}'


def test_bad_keys_raise_without_showing_the_key() -> None:
    with pytest.raises(SignatureKeyError) as info:
        diversify_3des("c2hvcnRrZXk=", ORDER)
    assert "c2hvcnRrZXk" not in str(info.value)
    with pytest.raises(SignatureKeyError):
        diversify_3des("not base64!", ORDER)


def test_decode_rejects_non_base64() -> None:
    with pytest.raises(ValueError):
        decode_parameters("***")
