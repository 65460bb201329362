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
import time
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


@pytest.mark.timeout(90)
def test_demo_with_speech_input_without_freeswitch_keys_the_card_and_says_why(
    tmp_path: Path,
) -> None:
    """`payivr demo --input speech` where no FreeSWITCH is found: what the keyed demo
    does (the request asks for speech, signed, through Kamailio; the capture plan's
    listens fall back to the keypad with no call audio), and it says so."""
    from payivr.stack.demo import NO_SPEECH_WITHOUT_FREESWITCH, run_demo

    out = io.StringIO()
    report = run_demo(EXAMPLE_CONFIG, tmp_path, out=out, freeswitch=False, input_mode="speech")
    text = out.getvalue()
    assert report.ok, text
    assert report.result == "approved"
    assert "  X-Pay-Input: speech\n" in text  # in the signed request Kamailio admitted
    assert "FreeSWITCH: not found" in text and NO_SPEECH_WITHOUT_FREESWITCH in text
    assert PAN not in text and files_containing(tmp_path, PAN[:12].encode()) == []


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


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            raw = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in raw:
            found.append(raw)
    return found


def test_a_starting_child_is_not_taken_for_dead_by_its_command_line(tmp_path: Path) -> None:
    # The flaky "callbacks exited at start:" with an empty reason: /proc showed the
    # child with a command line that was not (yet) the recorded one (a child inside
    # execve shows an empty one), so a live, slow-starting worker was reported as
    # exited and then not stopped either. Here the command line changes for good
    # (sh execs sleep): liveness and stopping must not depend on it.
    from payivr.stack.processes import spawn, stop
    from payivr.stack.up import _wait_alive

    proc = spawn("slow", ["/bin/sh", "-c", "exec sleep 30"], tmp_path / "slow.log")
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    try:
        for _ in range(100):  # until the exec happened
            if cmdline.read_bytes().startswith(b"sleep\0"):
                break
            time.sleep(0.02)
        assert not proc.cmdline_matches(), "the test needs a command line unlike argv"
        _wait_alive(proc, 0.3)
        assert proc.alive()
    finally:
        stopped = stop(proc, timeout=5)
    assert stopped and proc.exit_code() is not None
    assert not cmdline.exists()


def test_a_service_failing_at_start_is_named_with_its_exit_code_and_stderr(
    tmp_path: Path,
) -> None:
    from payivr.stack.processes import spawn
    from payivr.stack.up import StackError, _wait_alive

    script = "echo 'fatal: cannot read /etc/payivr/missing.yaml' >&2; exit 3"
    proc = spawn("callbacks", ["/bin/sh", "-c", script], tmp_path / "callbacks.log")
    with pytest.raises(StackError) as failed:
        _wait_alive(proc, 5)
    message = str(failed.value)
    assert message.startswith("callbacks exited with code 3 at start:")
    assert "fatal: cannot read /etc/payivr/missing.yaml" in message


@pytest.mark.timeout(90)
def test_a_failed_stack_up_stops_everything_it_started_and_says_why(tmp_path: Path) -> None:
    from payivr.stack.layout import StackLayout
    from payivr.stack.processes import StackState
    from payivr.stack.up import StackError, stack_up

    taken: list[socket.socket] = []

    def occupy_kamailio_port(layout: StackLayout) -> None:
        # Redis is up by now; Kamailio will find its SIP port taken and exit.
        port = layout.ports["kamailio"]
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_INET, kind)
            s.bind(("127.0.0.1", port))
            taken.append(s)

    try:
        with pytest.raises(StackError) as failed:
            stack_up(
                EXAMPLE_CONFIG, tmp_path, freeswitch=False, before_kamailio=occupy_kamailio_port
            )
    finally:
        for s in taken:
            s.close()
    message = str(failed.value)
    assert message.startswith("kamailio did not start: kamailio exited with")
    assert "Address already in use" in message or "bind" in message, message
    state = StackState.load(tmp_path)
    assert state is not None and state.processes == []
    assert _processes_mentioning(str(tmp_path)) == []
