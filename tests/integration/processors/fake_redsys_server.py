"""A loopback HTTP server that speaks Redsys' REST shape (`trataPeticionREST`).

It checks what a real SIS checks that matters here (the request signature, the
merchant, terminal, currency, amount, order and card fields), keeps orders so that a
repeated order is refused (`SIS0051`) and a cancellation (type 9) voids a charge, and
answers signed like Redsys. Its signature code is written independently of
payivr.processors.redsys.crypto (straight from the manual's description) so that the
two cannot share a mistake.

Outcomes by PAN follow SPEC 8's sandbox cards; `mode` makes it misbehave on purpose.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover
    TripleDES = algorithms.TripleDES  # type: ignore[attr-defined,misc,unused-ignore]

from loopback_server import LoopbackServer

PATH = "/sis/rest/trataPeticionREST"

# Ds_Response per PAN (SPEC 8 sandbox cards).
RESPONSES_BY_PAN = {
    "4000000000000002": "0190",  # declined, no reason given
    "4000000000009995": "0116",  # insufficient funds
    "4000000000000069": "0101",  # expired card
    "4000000000000119": "0909",  # system error
    "4000000000000127": "0129",  # CVV wrong
}


def _key(version: str, secret: str, order: str) -> bytes:
    if version == "HMAC_SHA256_V1":
        data = order.encode() + b"\0" * (-len(order) % 8)
        enc = Cipher(TripleDES(base64.b64decode(secret)), modes.CBC(bytes(8))).encryptor()
        return enc.update(data) + enc.finalize()
    padder = padding.PKCS7(128).padder()
    data = padder.update(order.encode()) + padder.finalize()
    enc = Cipher(algorithms.AES(secret[:16].encode()), modes.CBC(bytes(16))).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize())


def _mac(version: str, secret: str, order: str, params: str) -> bytes:
    algo = hashlib.sha256 if version == "HMAC_SHA256_V1" else hashlib.sha512
    return hmac.new(_key(version, secret, order), params.encode(), algo).digest()


def _b64decode_any(text: str) -> bytes:
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Order:
    params: dict[str, str]
    response: str
    voided: bool = False
    token: str | None = None


@dataclass
class FakeRedsys:
    """State and knobs of the fake SIS (one per test)."""

    secret: str
    merchant_code: str = "999008881"
    terminal: str = "1"
    mode: str = "normal"  # normal | malformed | bad-signature | slow | http500 | wrong-order
    delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, Order] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what a test looks at ----------------------------------------------------------

    def charges(self) -> list[Order]:
        """Authorisations that went through and were not voided: money taken."""
        return [
            o
            for o in self.orders.values()
            if o.response == "0000" and not o.voided and o.params["DS_MERCHANT_AMOUNT"] != "0"
        ]

    # -- the protocol --------------------------------------------------------------------

    def handle(self, body: bytes) -> tuple[int, dict[str, Any] | bytes]:
        try:
            doc = json.loads(body)
            version = doc["Ds_SignatureVersion"]
            encoded = doc["Ds_MerchantParameters"]
            signature = doc["Ds_Signature"]
            params = json.loads(_b64decode_any(encoded))
        except (ValueError, KeyError, TypeError):
            return 200, {"errorCode": "SIS0431"}
        with self.lock:
            self.requests.append({"version": version, "params": dict(params), "raw": encoded})
        order = params.get("DS_MERCHANT_ORDER", "")
        if version not in ("HMAC_SHA256_V1", "HMAC_SHA512_V1", "HMAC_SHA512_V2"):
            return 200, {"errorCode": "SIS0429"}
        expected = _mac(version, self.secret, order, encoded)
        if not hmac.compare_digest(expected, _b64decode_any(signature)):
            self.problems.append("request signature did not verify")
            return 200, {"errorCode": "SIS0042"}
        problem = self._check_fields(params)
        if problem:
            self.problems.append(problem)
            return 200, {"errorCode": "SIS0018"}

        kind = params["DS_MERCHANT_TRANSACTIONTYPE"]
        with self.lock:
            if kind == "9":
                answer = self._cancel(params)
            else:
                if order in self.orders:
                    return 200, {"errorCode": "SIS0051"}
                answer = self._authorise(params)
        if (self.mode == "slow" or self.delay_s) and kind != "9":
            time.sleep(self.delay_s or 2.0)  # the charge is booked, the answer is late
        if self.mode == "http500":
            return 500, b"<html>Internal Server Error</html>"
        if self.mode == "malformed":
            return 200, b'{"Ds_SignatureVersion": "HMAC_SHA256_V1", "Ds_Merch'
        if self.mode == "wrong-order":
            answer["Ds_Order"] = "9999" + order[4:]
        return 200, self._signed(version, order, answer)

    def _check_fields(self, p: dict[str, str]) -> str | None:
        if p.get("DS_MERCHANT_MERCHANTCODE") != self.merchant_code:
            return "wrong merchant code"
        if p.get("DS_MERCHANT_TERMINAL") != self.terminal:
            return "wrong terminal"
        if p.get("DS_MERCHANT_CURRENCY") not in ("978", "840", "826"):
            return "currency not numeric ISO 4217"
        if not p.get("DS_MERCHANT_AMOUNT", "").isdigit():
            return "amount not in minor units"
        order = p.get("DS_MERCHANT_ORDER", "")
        if not (4 <= len(order) <= 12 and order[:4].isdigit() and order.isalnum()):
            return "order id breaks Redsys rules"
        if p.get("DS_MERCHANT_TRANSACTIONTYPE") not in ("0", "9"):
            return "unexpected transaction type"
        if p.get("DS_MERCHANT_TRANSACTIONTYPE") == "0":
            if "DS_MERCHANT_PAN" in p:
                expiry = p.get("DS_MERCHANT_EXPIRYDATE", "")
                if not (len(expiry) == 4 and expiry.isdigit() and 1 <= int(expiry[2:]) <= 12):
                    return "expiry not YYMM"
                if p.get("DS_MERCHANT_DIRECTPAYMENT") != "moto":
                    return "card-not-present payment not flagged moto"
            elif "DS_MERCHANT_IDENTIFIER" not in p:
                return "neither card nor identifier"
        return None

    def _authorise(self, p: dict[str, str]) -> dict[str, Any]:
        order = p["DS_MERCHANT_ORDER"]
        token: str | None = None
        identifier = p.get("DS_MERCHANT_IDENTIFIER")
        if "DS_MERCHANT_PAN" in p:
            response = RESPONSES_BY_PAN.get(p["DS_MERCHANT_PAN"], "0000")
            if p.get("DS_MERCHANT_CVV2") == "999":
                response = "0129"
            if response == "0000" and identifier == "REQUIRED":
                if p.get("DS_MERCHANT_COF_INI") != "S":
                    self.problems.append("tokenisation without COF_INI=S")
                token = hashlib.sha1(f"tok:{order}".encode()).hexdigest()  # noqa: S324
                self.tokens[token] = p["DS_MERCHANT_PAN"]
        elif identifier in self.tokens:
            if p.get("DS_MERCHANT_COF_INI") != "N":
                self.problems.append("token sale without COF_INI=N")
            response = RESPONSES_BY_PAN.get(self.tokens[identifier], "0000")
        else:
            response = "9093"  # no such card
        self.orders[order] = Order(dict(p), response, token=token)
        answer: dict[str, Any] = {
            "Ds_Amount": p["DS_MERCHANT_AMOUNT"],
            "Ds_Currency": p["DS_MERCHANT_CURRENCY"],
            "Ds_Order": order,
            "Ds_MerchantCode": self.merchant_code,
            "Ds_Terminal": self.terminal,
            "Ds_Response": response,
            "Ds_TransactionType": "0",
            "Ds_SecurePayment": "0",
            "Ds_Language": "1",
            "Ds_Card_Country": "724",
        }
        if response == "0000":
            answer["Ds_AuthorisationCode"] = hashlib.sha256(order.encode()).hexdigest()[:6]
        if token:
            answer["Ds_Merchant_Identifier"] = token
            answer["Ds_Merchant_Cof_Txnid"] = "2006031152000"
        return answer

    def _cancel(self, p: dict[str, str]) -> dict[str, Any]:
        order = p["DS_MERCHANT_ORDER"]
        original = self.orders.get(order)
        if original is None or original.response != "0000":
            response = "0480"  # original not located: nothing was charged
        else:
            original.voided = True
            response = "0400"
        return {
            "Ds_Amount": p["DS_MERCHANT_AMOUNT"],
            "Ds_Currency": p["DS_MERCHANT_CURRENCY"],
            "Ds_Order": order,
            "Ds_MerchantCode": self.merchant_code,
            "Ds_Terminal": self.terminal,
            "Ds_Response": response,
            "Ds_TransactionType": "9",
        }

    def _signed(self, version: str, order: str, answer: dict[str, Any]) -> dict[str, Any]:
        raw = json.dumps(answer).encode()
        if version == "HMAC_SHA512_V2":
            encoded = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        else:
            encoded = base64.b64encode(raw).decode()
        mac = _mac(version, self.secret, order, encoded)
        if self.mode == "bad-signature":
            mac = bytes([mac[0] ^ 1]) + mac[1:]
        # Redsys answers in URL-safe Base64, whatever the request used.
        signature = base64.urlsafe_b64encode(mac).decode()
        return {
            "Ds_SignatureVersion": version,
            "Ds_MerchantParameters": encoded,
            "Ds_Signature": signature,
        }


class FakeRedsysServer(LoopbackServer):
    """`FakeRedsys` behind a loopback HTTP server."""

    def __init__(self, state: FakeRedsys) -> None:
        self.state = state
        super().__init__(self._respond, PATH)

    def _respond(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        payload: dict[str, Any] | bytes
        if path != PATH:
            status, payload = 404, b"not found"
        elif "application/json" not in headers.get("content-type", ""):
            status, payload = 415, b"json only"
        else:
            status, payload = self.state.handle(body)
        return status, {}, payload if isinstance(payload, bytes) else json.dumps(payload).encode()
