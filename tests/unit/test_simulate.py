"""`payivr simulate`, driven through stdin as a script would (and once through a pty)."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from payivr import cli
from tests.conftest import EXAMPLE_CONFIG, REPO
from tests.support import pci
from tests.unit.plan_support import TEST_PANS

BASE = ["simulate", "--config", str(EXAMPLE_CONFIG), "--merchant", "acme", "--today", "2026-11-21"]


def run(
    keys: str, *extra: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(keys))
    code = cli.main([*BASE, *extra])
    out, err = capsys.readouterr()
    return code, out + err


def assert_no_card_data(text: str) -> None:
    # The expiry and the CVV keyed in these tests, besides the cards.
    assert not pci.find_card_data(text, pans=TEST_PANS, short=("1230", "737"))


def test_approved_payment_through_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(
        "4111 1111 1111 1111#\n1230\n737\n",
        "--order", "A1001", "--amount", "1250",
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 0
    assert "IVR: The amount to pay is\nIVR: 12.50 EUR" in out
    assert "result:    approved" in out
    assert "auth code: 488659" in out  # sandbox_auth_code("A1001", 1250)
    assert "card:      ************1111 (visa)" in out
    assert "IVR: 4 8 8 6 5 9" in out
    assert out.index("(recording masked)") < out.index("[card_number > ]")
    assert out.index("[cvv > ]") < out.index("(recording unmasked)")
    assert_no_card_data(out)


def test_declined_payment_through_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(
        "4000000000009995#\n1230\n737\n", "--order", "A1002",
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 1
    assert "result:    declined" in out
    assert "reason:    insufficient-funds" in out
    assert "card:      ************9995 (visa)" in out
    assert "IVR: Sorry, your payment has been declined." in out
    assert_no_card_data(out)


def test_reprompts_and_language(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(
        "4111111111111112#\n\n4111111111111111\n1330\n1230\n737\n",
        "--order", "A1003", "--language", "es",
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 0
    assert "IVR: El número de tarjeta no es válido." in out
    assert "IVR: Lo sentimos, no hemos recibido ningún dato." in out
    assert "IVR: El mes no es válido." in out
    assert "IVR: Su pago ha sido aprobado." in out
    assert_no_card_data(out)


def test_end_of_input_is_a_hangup(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run("4111111111111111#\n", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 1
    assert "result:    cancelled" in out and "reason:    caller-hangup" in out
    assert "(recording unmasked)" in out
    assert "call returned" not in out


def test_processor_timeout_card(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    code, out = run(
        "4000000000000259#\n1230\n737\n", "--processor-timeout", "0.05",
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert time.monotonic() - started >= 0.05
    assert code == 1 and "reason:    processor-timeout" in out


def test_tokenize_prints_the_token_and_says_no_amount(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(
        "4111111111111111#\n1230\n737\n", "--operation", "tokenize", "--order", "T1",
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 0
    assert "token:     tok_" in out and "EUR" not in out
    assert "IVR: Your card has been verified and registered." in out


def test_bad_request_is_refused_before_any_prompt(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run("", "--amount", "0", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "X-Pay-Amount" in out and "IVR:" not in out


def test_unknown_merchant(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code = cli.main(["simulate", "--config", str(EXAMPLE_CONFIG), "--merchant", "nope"])
    assert code == 2 and "acme" in capsys.readouterr().err


def test_as_a_subprocess_from_a_pipe() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "payivr.cli", *BASE, "--order", "A1001"],
        input="5555555555554444#\n1230\n737\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "************4444 (mastercard)" in done.stdout
    assert "5555555555554444" not in done.stdout + done.stderr


def test_on_a_terminal_digits_echo_as_stars() -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "payivr.cli", *BASE, "--order", "A1001"],
        stdin=slave, stdout=slave, stderr=slave, cwd=REPO,
    )  # fmt: skip
    os.close(slave)
    output = b""
    try:
        for keys in (b"4111111111111111#", b"1230", b"737"):
            output += _read_until(master, b"> ] ")
            os.write(master, keys)  # at once: typed ahead, still never echoed
        output += _read_until(master, b"call returned")
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(master)
    text = output.decode()
    assert proc.returncode == 0
    assert "*" * 16 + "#" in text  # one star per digit, then the terminator
    assert "result:    approved" in text
    assert_no_card_data(text)


def _read_until(fd: int, marker: bytes, timeout: float = 10.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data:
        remaining = deadline - time.monotonic()
        assert remaining > 0, data.decode(errors="replace")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data


def test_processor_timeout_is_reversed_and_shown(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(
        "4000000000000259#\n1230\n737\n", "--processor-timeout", "0.05",
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 1 and "result:    failed" in out
    assert "raw code:  payivr:timeout" in out
    assert "reversal:  reversed (00)" in out  # the sandbox voids what it may have done
    assert_no_card_data(out)


def test_approved_payment_needs_no_reversal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run("4111111111111111#\n1230\n737\n", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0 and "raw code:  00" in out and "reversal" not in out


class RecordingProcessor:
    """Keeps what each charge carried (as checked at charge time) and the request."""

    def __init__(self) -> None:
        self.requests: list[object] = []
        self.cvv_seen: list[str | None] = []

    def charge(self, request: object) -> object:
        from payivr.core.processor import ChargeRequest, ProcessorAnswer, ResultCode

        assert isinstance(request, ChargeRequest)
        self.requests.append(request)
        self.cvv_seen.append(request.cvv.reveal() if request.cvv is not None else None)
        return ProcessorAnswer(ResultCode.APPROVED, auth_code="123456", raw_code="00")

    def reverse(self, request: object) -> object:
        raise AssertionError("no reversal expected")


def test_token_sale_cvv_reaches_the_processor_and_is_wiped_after() -> None:
    import dataclasses
    import datetime as dt

    from payivr.commands.simulate import Keypad, Simulator
    from payivr.core.config import load_config
    from payivr.core.plan import CapturePlan
    from payivr.core.prompts import load_prompts
    from payivr.core.request import parse_request
    from payivr.core.sandbox import sandbox_token

    config = load_config(EXAMPLE_CONFIG)
    acme = config.merchants["acme"]
    merchant = dataclasses.replace(
        acme, capture=dataclasses.replace(acme.capture, token_sale_cvv=True)
    )
    from payivr.processors import sandbox_token_key

    token = sandbox_token(sandbox_token_key(merchant), "acme", "4111111111111111")
    fields = {
        "x-pay-merchant": "acme", "x-pay-operation": "token_sale", "x-pay-order": "TS1",
        "x-pay-amount": "990", "x-pay-token": token,
    }  # fmt: skip
    request = parse_request(fields, merchant, call_id="simulate-TS1")
    out = io.StringIO()
    processor = RecordingProcessor()
    simulator = Simulator(
        CapturePlan(request, merchant, dt.date(2026, 11, 21)),
        request,
        load_prompts(request.language),
        Keypad(io.StringIO("737\n"), out),
        out,
        1.0,
        processor,  # type: ignore[arg-type]
    )
    outcome = simulator.run()
    assert str(outcome.code) == "approved"
    assert processor.cvv_seen == ["737"]
    sent = processor.requests[0]
    assert sent.card is None and sent.token == token  # type: ignore[attr-defined]
    assert sent.cvv.wiped  # type: ignore[attr-defined]
    assert "737" not in out.getvalue()
