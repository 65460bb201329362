from __future__ import annotations

import hashlib
import hmac
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.unit.helpers import EXAMPLE, example_data

PAYIVR = [sys.executable, "-m", "payivr.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PAYIVR, *args], capture_output=True, text=True, timeout=60)


def test_check_config_ok() -> None:
    out = run("check-config", str(EXAMPLE))
    assert out.returncode == 0, out.stderr
    assert "ok (1 merchant(s): acme)" in out.stdout


def test_check_config_lists_three_mistakes_with_paths(tmp_path: Path) -> None:
    data = example_data()
    data["merchants"]["acme"]["callback_hosts"] = ["bad host"]
    data["merchants"]["acme"]["max_amount"] = -3
    data["services"]["esl"]["listen_port"] = "eighty"
    shutil.copy(EXAMPLE.parent / "secrets.example.yaml", tmp_path / "secrets.example.yaml")
    cfg = tmp_path / "payivr.yaml"
    cfg.write_text(yaml.safe_dump(data))
    out = run("check-config", str(cfg))
    assert out.returncode == 2
    assert "3 problem(s)" in out.stderr
    for line in (
        "services.esl.listen_port: must be an integer",
        "merchants.acme.callback_hosts[0]: not a host name",
        "merchants.acme.max_amount: must be a positive integer",
    ):
        assert line in out.stderr


def test_check_config_names_a_missing_sandbox_token_secret(tmp_path: Path) -> None:
    data = example_data()
    del data["merchants"]["acme"]["processor"]["token_secret"]
    # A merchant without a processor section gets the sandbox too, so it needs one too.
    data["merchants"]["beta"] = {
        k: v for k, v in data["merchants"]["acme"].items() if k != "processor"
    }
    shutil.copy(EXAMPLE.parent / "secrets.example.yaml", tmp_path / "secrets.example.yaml")
    cfg = tmp_path / "payivr.yaml"
    cfg.write_text(yaml.safe_dump(data))
    out = run("check-config", str(cfg))
    assert out.returncode == 2
    for merchant in ("acme", "beta"):
        assert (
            f"merchants.{merchant}.processor.token_secret: required (a secret reference"
            in out.stderr
        )


def test_sign_output_verifies_with_an_independent_hmac() -> None:
    out = run(
        "sign",
        "--config",
        str(EXAMPLE),
        "--merchant",
        "acme",
        "--call-id",
        "c-42@cti",
        "--order",
        "A1001",
        "--amount",
        "1250",
        "--currency",
        "EUR",
        "--return",
        "sip:queue@127.0.0.1",
        "--timestamp",
        "1795263787",
    )
    assert out.returncode == 0, out.stderr
    headers = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    signature = headers.pop("X-Pay-Signature")
    # SPEC section 3, written out again by hand: lowercase names, sorted, "\n", Call-ID.
    canonical = (
        "".join(
            f"{k.lower()}:{v}\n" for k, v in sorted(headers.items(), key=lambda kv: kv[0].lower())
        )
        + "c-42@cti"
    )
    expected = hmac.new(
        b"demo-signing-secret-acme-0001", canonical.encode(), hashlib.sha256
    ).hexdigest()
    assert signature == f"v1={expected}"
    if shutil.which("openssl"):
        dgst = subprocess.run(
            ["openssl", "dgst", "-sha256", "-hmac", "demo-signing-secret-acme-0001"],
            input=canonical,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert dgst.stdout.strip().endswith(expected)


@pytest.mark.parametrize("merchant", ["nobody"])
def test_sign_unknown_merchant(merchant: str) -> None:
    out = run(
        "sign", "--config", str(EXAMPLE), "--merchant", merchant, "--call-id", "c", "--order", "A1"
    )
    assert out.returncode == 2 and "unknown merchant" in out.stderr
