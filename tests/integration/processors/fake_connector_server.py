"""A loopback gateway speaking payivr's generic HTTP connector contract.

It checks the request signature (HMAC-SHA256 over "<t>.<body>", written here from the
contract rather than with payivr's helper), the documented fields and the
Idempotency-Key header; it keeps answers by idempotency key and replays them, so a
retry never charges twice; `reverse` voids a charge. Outcomes by PAN follow SPEC 8.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from loopback_server import LoopbackServer

OUTCOMES_BY_PAN: dict[str, tuple[str, str | None]] = {
    "4000000000000002": ("declined", "card-declined"),
    "4000000000009995": ("declined", "insufficient-funds"),
    "4000000000000069": ("declined", "card-expired"),
    "4000000000000119": ("failed", "processor-error"),
}
FIELDS = {
    "version", "operation", "idempotency_key", "merchant", "order", "amount", "currency",
    "description", "card", "token", "token_reference",
}  # fmt: skip


def signature(secret: bytes, body: bytes, t: int) -> str:
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def check_signature(secret: bytes, body: bytes, header: str) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    t = parts.get("t", "")
    if not t.isdigit() or abs(time.time() - int(t)) > 300:
        return False
    return hmac.compare_digest(signature(secret, body, int(t)), header)


@dataclass
class FakeConnector:
    secret: bytes
    key_id: str | None = None
    mode: str = "normal"  # normal | malformed | bad-signature | unsigned | other-key | stale
    delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    charged: dict[str, int] = field(default_factory=dict)  # idempotency key -> amount
    tokens: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if not check_signature(self.secret, body, headers.get("x-payivr-signature", "")):
            self.problems.append("request signature did not verify")
            return 401, {}, b'{"error": "bad signature"}'
        if self.key_id is not None and headers.get("x-payivr-key-id") != self.key_id:
            self.problems.append("wrong key id")
        try:
            req = json.loads(body)
        except ValueError:
            return 400, {}, b"{}"
        with self.lock:
            self.requests.append(req)
        missing = FIELDS - set(req)
        if missing:
            self.problems.append(f"missing fields {sorted(missing)}")
        key = req.get("idempotency_key")
        if headers.get("idempotency-key") != key:
            self.problems.append("Idempotency-Key header differs from the body")
        with self.lock:
            if req["operation"] == "reverse":
                answer = self._reverse(req)
            elif key in self.answers:
                answer = dict(self.answers[key], replayed=True)
            else:
                answer = self._charge(req)
                self.answers[key] = answer
        if self.delay_s:
            time.sleep(self.delay_s)
        return self._respond(answer)

    def _charge(self, req: dict[str, Any]) -> dict[str, Any]:
        key = req["idempotency_key"]
        op = req["operation"]
        card = req.get("card")
        if op == "token_sale":
            pan = self.tokens.get(req.get("token") or "")
            if pan is None:
                return self._answer(key, "declined", error_code="invalid-card")
        else:
            if not card or not card.get("number") or len(card.get("expiry") or "") != 4:
                self.problems.append("card operation without card fields")
                return self._answer(key, "failed", error_code="processor-error")
            pan = card["number"]
        result, reason = OUTCOMES_BY_PAN.get(pan, ("approved", None))
        if result != "approved":
            return self._answer(key, result, error_code=reason, processor_code="GW-" + str(reason))
        token = None
        if op in ("sale_tokenize", "tokenize"):
            token = "tok_" + hashlib.sha256(key.encode()).hexdigest()[:20]
            self.tokens[token] = pan
        if op != "tokenize":
            self.charged[key] = req["amount"]
        return self._answer(
            key, "approved", auth_code=hashlib.sha256(key.encode()).hexdigest()[:6], token=token
        )

    def _reverse(self, req: dict[str, Any]) -> dict[str, Any]:
        key = req["idempotency_key"]
        # A reversed key is never charged again: later charges are duplicates.
        self.answers[key] = self._answer(key, "failed", error_code="duplicate-order")
        if self.charged.pop(key, None) is None:
            return self._answer(key, "approved", error_code="nothing-to-reverse")
        return self._answer(key, "approved", processor_code="VOIDED")

    def _answer(self, key: str, result: str, **fields: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "idempotency_key": key, "result": result, "auth_code": None, "token": None,
            "error_code": None, "processor_code": None,
        }  # fmt: skip
        base.update(fields)
        return base

    def _respond(self, answer: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if self.mode == "other-key":
            answer = dict(answer, idempotency_key="someone-else")
        body = json.dumps(answer).encode()
        if self.mode == "malformed":
            body = b'{"result": "approved", "idempotency_k'
        t = int(time.time()) - (3600 if self.mode == "stale" else 0)
        sig = signature(self.secret, body, t)
        if self.mode == "bad-signature":
            sig = sig[:-1] + ("0" if sig[-1] != "0" else "1")
        headers = {} if self.mode == "unsigned" else {"X-Payivr-Signature": sig}
        return 200, headers, body


class FakeConnectorServer(LoopbackServer):
    """`FakeConnector` behind a loopback HTTP server."""

    def __init__(self, state: FakeConnector) -> None:
        self.state = state
        super().__init__(lambda _path, headers, body: state.handle(headers, body), "/payivr/v1")
