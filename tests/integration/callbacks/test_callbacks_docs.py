"""docs/callbacks.md's worked example is right, and its commands still exist."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

from payivr.core.signature import sign_callback, verify_callback
from tests.integration.callbacks.cbsupport import run_cli

DOC = Path(__file__).resolve().parents[3] / "docs" / "callbacks.md"


def test_worked_example_signature() -> None:
    text = DOC.read_text()
    body = re.search(r"^(\{\"event_id\".*\})$", text, re.MULTILINE)
    header = re.search(r"^X-Payivr-Signature: (t=\d+,v1=[0-9a-f]{64})$", text, re.MULTILINE)
    length = re.search(r"^Content-Length: (\d+)$", text, re.MULTILINE)
    assert body and header and length
    raw = body.group(1).encode()
    secret = b"demo-callback-secret-acme-0001"
    t = int(header.group(1).split(",")[0][2:])
    assert sign_callback(secret, raw, t) == header.group(1)
    assert verify_callback(secret, raw, header.group(1))
    mac = hmac.new(secret, f"{t}.".encode() + raw, hashlib.sha256).hexdigest()
    assert f"= {mac}" in text
    assert int(length.group(1)) == len(raw)


def test_documented_options_exist() -> None:
    helps = ""
    for action in ("work", "list", "replay", "verify"):
        out = run_cli(None, action, "--help")
        assert out.returncode == 0, out.stderr
        helps += out.stdout
    for option in set(re.findall(r"`(--[a-z-]+)", DOC.read_text())):
        assert option in helps, option
