"""Builders shared by the core unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from payivr.core.admission import MessageBody
from payivr.core.config import Config, parse_config
from payivr.core.request import SIGNED_REQUEST_HEADERS
from payivr.core.signature import sign

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "payivr.example.yaml"
SECRET = "demo-signing-secret-acme-0001"
NOW = 1_795_263_787
# The SDP offer of an early-offer INVITE (admission requires one).
SDP = MessageBody(
    "application/sdp",
    "v=0\r\no=cti 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
)


def example_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return data


def config_from(data: dict[str, Any]) -> Config:
    return parse_config(data, base_dir=EXAMPLE.parent)


def example_config(**merchant_overrides: Any) -> Config:
    data = example_data()
    data["merchants"]["acme"].update(merchant_overrides)
    return config_from(data)


def signed_headers(
    call_id: str = "call-1@cti", ts: int = NOW, secret: str = SECRET, **fields: str
) -> list[tuple[str, str]]:
    """A valid signed sale request, with `fields` (x_pay_amount="9") overriding."""
    values = {
        "x-pay-merchant": "acme",
        "x-pay-operation": "sale",
        "x-pay-order": "A1001",
        "x-pay-amount": "1250",
        "x-pay-currency": "EUR",
        "x-pay-timestamp": str(ts),
    }
    for key, value in fields.items():
        name = key.replace("_", "-").lower()
        if value is None:
            values.pop(name, None)
        else:
            values[name] = value
    values["x-pay-signature"] = sign(secret.encode(), values, call_id, SIGNED_REQUEST_HEADERS)
    return [(k.title(), v) for k, v in values.items()]
