"""The local stack and the demo without FreeSWITCH, end to end, with real Redis,
Kamailio, SIPp, the callback worker and the ESL application (bounded in time)."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_CONFIG

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not all(shutil.which(b) for b in ("redis-server", "kamailio", "sipp")),
        reason="needs redis-server, kamailio (+ kamailio-python3-modules) and sipp "
        "(apt-get install redis-server kamailio kamailio-python3-modules sip-tester)",
    ),
]
PAN = "4111111111111111"


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            hits.append(str(path.relative_to(root)))
    return hits


@pytest.mark.timeout(90)
def test_demo_without_freeswitch_runs_a_payment_end_to_end(tmp_path: Path) -> None:
    from payivr.core.signature import verify_callback
    from payivr.stack.demo import run_demo
    from payivr.stack.processes import StackState

    out = io.StringIO()
    report = run_demo(EXAMPLE_CONFIG, tmp_path, out=out, freeswitch=False)
    text = out.getvalue()
    assert report.ok, text
    # The contact center got the signed result on the BYE, through Kamailio.
    bye = dict(report.bye_headers)
    assert bye["X-Pay-Result"] == "approved"
    assert bye["X-Pay-Session"] == report.session_id
    assert bye["X-Pay-Card"] == "************1111" and bye["X-Pay-Card-Brand"] == "visa"
    assert bye["X-Pay-Auth-Code"].isdigit() and len(bye["X-Pay-Auth-Code"]) == 6
    assert report.result_signature_ok
    # The worker delivered the signed callback from the outbox.
    body = json.loads(report.callback_body)
    assert (body["result"], body["session_id"]) == ("approved", report.session_id)
    assert body["auth_code"] == bye["X-Pay-Auth-Code"]
    assert body["card"] == {"brand": "visa", "last4": "1111"}
    assert verify_callback(
        b"demo-callback-secret-acme-0001",
        report.callback_body,
        report.callback_headers["X-Payivr-Signature"],
    )
    # It says what it could not run, and how production gets it.
    assert "FreeSWITCH: not found" in text and "Ansible role `freeswitch`" in text
    # The card number is nowhere: logs, SIP traces, Redis' append-only file, output.
    assert PAN not in text and PAN[:12] not in text
    assert files_containing(tmp_path, PAN.encode()) == []
    assert files_containing(tmp_path, PAN[:12].encode()) == []
    assert list((tmp_path / "redis").rglob("*.aof")), "Redis wrote no AOF to search"
    # And everything it started is stopped.
    state = StackState.load(tmp_path)
    assert state is not None and state.processes == []
    for port in state.ports.values():
        assert not listening(port)


@pytest.mark.timeout(60)
def test_stack_up_status_down_through_the_cli(tmp_path: Path) -> None:
    def payivr(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "payivr.cli", *args],
            capture_output=True,
            text=True,
            timeout=45,
            check=False,
        )

    up = payivr(
        "stack",
        "up",
        "--config",
        str(EXAMPLE_CONFIG),
        "--workdir",
        str(tmp_path),
        "--no-freeswitch",
    )
    try:
        assert up.returncode == 0, up.stderr
        from payivr.stack.processes import StackState

        state = StackState.load(tmp_path)
        assert state is not None
        assert {p.name for p in state.processes} >= {"redis", "kamailio", "callbacks"}
        assert all(p.alive() for p in state.processes)
        for name in ("redis", "kamailio"):
            assert listening(state.ports[name]), name
        # the derived config is on loopback, never on the ports the example names
        config = (tmp_path / "payivr.yaml").read_text()
        assert "6379" not in config and "port: 5060" not in config
        status = payivr("stack", "status", "--workdir", str(tmp_path))
        assert status.returncode == 0 and "kamailio: pid" in status.stdout
    finally:
        down = payivr("stack", "down", "--workdir", str(tmp_path))
    assert down.returncode == 0 and "kamailio" in down.stdout
    assert not any(p.alive() for p in state.processes)
    assert not listening(state.ports["redis"]) and not listening(state.ports["kamailio"])
    again = payivr("stack", "down", "--workdir", str(tmp_path))
    assert "nothing was running" in again.stdout


def test_stack_down_never_signals_a_pid_it_did_not_start(tmp_path: Path) -> None:
    from payivr.stack.processes import Managed, StackState
    from payivr.stack.up import stack_down

    # A recorded pid now used by another program (here: this test's own process).
    StackState(
        str(tmp_path),
        "x.yaml",
        processes=[Managed("redis", os.getpid(), ["/usr/bin/redis-server"], "redis.log")],
    ).save()
    assert stack_down(tmp_path) == []
