"""Payment calls through a real FreeSWITCH, keyed by SIPp as RFC 2833 DTMF.

FreeSWITCH is not packaged in Debian: these tests look for FREESWITCH_BIN or
`freeswitch` on PATH and are skipped otherwise. Each brings up the local stack
(Redis, Kamailio, FreeSWITCH with payivr's rendered config, the ESL application, the
callback worker) in a temporary directory, on loopback ports.
"""

from __future__ import annotations

import io
import secrets
import socket
import wave
from pathlib import Path

import pytest
import yaml

from payivr.stack.up import find_freeswitch
from tests.conftest import EXAMPLE_CONFIG

FREESWITCH = find_freeswitch()
pytestmark = [
    pytest.mark.freeswitch,
    pytest.mark.skipif(
        FREESWITCH is None,
        reason="no FreeSWITCH: set FREESWITCH_BIN or put freeswitch on PATH (not packaged "
        "in Debian; production hosts get it from the vendor repository, ansible role freeswitch)",
    ),
]
PAN = "4111111111111111"


def config_with(tmp_path: Path, **acme: object) -> Path:
    """The example config with changes to merchant acme, secrets by absolute path."""
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["secrets_file"] = str((EXAMPLE_CONFIG.parent / data["secrets_file"]).resolve())
    data["services"]["esl"]["prompts_dir"] = str(
        (EXAMPLE_CONFIG.parent / data["services"]["esl"]["prompts_dir"]).resolve()
    )
    data["merchants"]["acme"].update(acme)
    path = tmp_path / "payivr.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def files_containing(root: Path, needle: bytes) -> list[str]:
    return [
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(".pcap") and needle in p.read_bytes()
    ]


@pytest.mark.timeout(300)
def test_card_keyed_by_rfc2833_is_approved_and_leaves_no_trace(tmp_path: Path) -> None:
    from payivr.stack.demo import run_demo

    out = io.StringIO()
    report = run_demo(config_with(tmp_path), tmp_path / "stack", out=out)
    assert report.ok, out.getvalue()
    bye = dict(report.bye_headers)
    assert bye["X-Pay-Card"] == "************1111"  # all 16 digits arrived, "1111" included
    # FreeSWITCH's and every other log, the SIP traces, Redis' AOF: no card number.
    # (The caller's pcap is excluded: it is the keypad's input.)
    assert files_containing(tmp_path / "stack", PAN.encode()) == []
    assert files_containing(tmp_path / "stack", PAN[:12].encode()) == []


@pytest.mark.timeout(300)
def test_a_declined_card_comes_back_declined_with_its_reason(tmp_path: Path) -> None:
    from payivr.stack.demo import run_demo

    out = io.StringIO()
    report = run_demo(config_with(tmp_path), tmp_path / "stack", out=out, card="4000000000000002")
    bye = dict(report.bye_headers)
    assert (bye.get("X-Pay-Result"), bye.get("X-Pay-Reason")) == ("declined", "card-declined"), (
        out.getvalue()
    )
    assert "X-Pay-Auth-Code" not in bye and report.result_signature_ok
    assert report.callback_signature_ok


def _longest_zero_run_s(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        assert (w.getsampwidth(), w.getnchannels()) == (2, 1)
        frames = w.readframes(w.getnframes())
        rate = w.getframerate()
    best = run = 0
    for i in range(0, len(frames), 2):
        if frames[i] == 0 and frames[i + 1] == 0:
            run += 1
            best = max(best, run)
        else:
            run = 0
    return best / rate


@pytest.mark.timeout(300)
def test_recording_has_only_zero_samples_over_the_card_span(tmp_path: Path) -> None:
    from payivr.stack.demo import run_demo

    out = io.StringIO()
    report = run_demo(config_with(tmp_path, record_ivr_leg=True), tmp_path / "stack", out=out)
    assert report.ok, out.getvalue()
    recordings = list((tmp_path / "stack" / "recordings").glob("*.wav"))
    assert recordings, "the IVR leg was not recorded"
    # 16 digits and "#", one every 300 ms: the mask covers at least that span, as exact
    # zeros (unmasked silence is never bit-zero, per the shared transcripts' analysis).
    assert _longest_zero_run_s(recordings[0]) >= 17 * 0.3


def _invite(port: int, headers: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(5)
        local = s.getsockname()[1]
        body = (
            "v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            "m=audio 9 RTP/AVP 8\r\n"
        )
        msg = (
            f"INVITE sip:pay@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
            f"From: <sip:t@127.0.0.1>;tag={secrets.token_hex(3)}\r\nTo: <sip:pay@127.0.0.1>\r\n"
            f"Call-ID: {secrets.token_hex(8)}@t\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:t@127.0.0.1:{local}>\r\nMax-Forwards: 70\r\n{headers}"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        )
        s.sendto(msg.encode(), ("127.0.0.1", port))
        while True:
            reply = s.recv(4096).decode(errors="replace")
            if not reply.startswith("SIP/2.0 1"):
                return reply


@pytest.mark.timeout(120)
def test_calls_without_a_kamailio_session_are_refused_and_a_dead_esl_returns_failed(
    tmp_path: Path,
) -> None:
    from payivr.stack.demo import pick_merchant, request_headers
    from payivr.stack.ports import free_port
    from payivr.stack.processes import stop
    from payivr.stack.sipp import contact_center, received_bye_headers, write_injection
    from payivr.stack.up import stack_down, stack_up

    state = stack_up(config_with(tmp_path), tmp_path / "stack", freeswitch=FREESWITCH)
    try:
        # Straight to FreeSWITCH with no X-Payivr-Session: the payivr context refuses it.
        assert _invite(state.ports["freeswitch"], "").startswith("SIP/2.0 403")
        # The ESL application is gone: the dialplan's fallback returns the call as failed.
        for proc in state.processes:
            if proc.name == "esl":
                stop(proc)
        from payivr.core.config import load_config

        merchant = pick_merchant(load_config(state.config))
        call_id = f"fallback-{secrets.token_hex(6)}@127.0.0.1"
        headers = request_headers(merchant, call_id, "http://127.0.0.1:9/cb", "en", 1250)
        sipp_dir = tmp_path / "sipp"
        sipp_dir.mkdir()
        inj = write_injection(sipp_dir / "r.csv", [f"{n}: {v}" for n, v in headers])
        uac = contact_center(state.ports["kamailio"], free_port(), call_id, inj, sipp_dir)
        uac.start()
        assert uac.wait(60) == 0, uac.explain()
        bye = dict(received_bye_headers(uac))
        assert bye.get("X-Pay-Result") == "failed", bye
        assert bye.get("X-Pay-Reason") == "ivr-unavailable"
        assert bye.get("X-Pay-Order") == dict(headers)["X-Pay-Order"]
    finally:
        stack_down(tmp_path / "stack")
