"""SIPp for the demo: the contact center's UAC, the stand-in FreeSWITCH UAS, and the
INFO that hands the stand-in the result headers to put on its BYE."""

from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
import time
from importlib import resources
from pathlib import Path

from payivr.stack.ports import free_udp_block

HEADER_FIELDS = 14
PAD = "X-Demo-Pad: -"


def scenario(name: str) -> Path:
    """A scenario shipped in payivr/data/sipp."""
    return Path(str(resources.files("payivr") / "data" / "sipp" / f"{name}.xml"))


def sipp_binary() -> str:
    binary = shutil.which("sipp")
    if binary is None:
        raise RuntimeError("sipp not found (apt-get install sip-tester)")
    return binary


def write_injection(path: Path, header_lines: list[str]) -> Path:
    """One call: field0 unused (SIPp owns the Call-ID), fields 1..14 whole header lines."""
    lines = header_lines + [PAD] * (HEADER_FIELDS - len(header_lines))
    if len(lines) > HEADER_FIELDS or any(";" in line for line in lines):
        raise ValueError("at most 14 header lines and no ';' (the injection separator)")
    path.write_text("SEQUENTIAL\n" + ";".join(["-", *lines]) + "\n")
    return path


class Sipp:
    """One SIPp process with its logs in a directory."""

    def __init__(self, name: str, argv: list[str], workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.messages = workdir / f"{name}.messages"
        self.log = workdir / f"{name}.log"
        self.errors = workdir / f"{name}.errors"
        self.argv = [
            sipp_binary(),
            *argv,
            "-i",
            "127.0.0.1",
            "-t",
            "u1",
            "-nostdin",
            "-trace_msg",
            "-message_file",
            str(self.messages),
            "-trace_logs",
            "-log_file",
            str(self.log),
            "-trace_err",
            "-error_file",
            str(self.errors),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Sipp:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def wait(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)  # SIPp: stop softly
            if self.wait(3) is None:
                self.proc.kill()
                self.proc.wait(3)

    def text(self, which: Path) -> str:
        try:
            return which.read_text(errors="replace")
        except OSError:
            return ""

    def explain(self) -> str:
        return (
            f"--- {self.name} errors\n{self.text(self.errors)[-2500:]}\n"
            f"--- {self.name} messages\n{self.text(self.messages)[-2500:]}"
        )


def standin_freeswitch(port: int, workdir: Path) -> Sipp:
    """The UAS standing in for FreeSWITCH; answers Kamailio's OPTIONS probes (-aa)."""
    return Sipp(
        "freeswitch-standin",
        [
            "-sf",
            str(scenario("uas-freeswitch-standin")),
            "-p",
            str(port),
            "-aa",
            "-mp",
            str(free_udp_block()),
        ],
        workdir,
    )


def contact_center(
    kamailio_port: int,
    local_port: int,
    call_id: str,
    injection: Path,
    workdir: Path,
    timeout_s: int = 60,
    scenario_file: Path | None = None,
) -> Sipp:
    """The CTI's UAC: one signed payment INVITE with the given Call-ID (the scenario
    `uac-sale-expect-result-on-bye` unless `scenario_file` names another)."""
    # SIPp maps responses to calls by the Call-ID it generated, so the Call-ID the
    # signature covers is set through -cid_str (with no %u/%p: one call, fixed id).
    return Sipp(
        "contact-center",
        [
            f"127.0.0.1:{kamailio_port}",
            "-sf",
            str(scenario_file or scenario("uac-sale-expect-result-on-bye")),
            "-inf",
            str(injection),
            "-cid_str",
            call_id,
            "-m",
            "1",
            "-p",
            str(local_port),
            "-mp",
            str(free_udp_block()),
            "-timeout",
            f"{timeout_s}s",
            "-timeout_error",
        ],
        workdir,
    )


def wait_for_session(uas: Sipp, timeout: float) -> tuple[str, str] | None:
    """(session id, Call-ID) once the stand-in logged the relayed INVITE."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in uas.text(uas.log).splitlines():
            if line.startswith("session="):
                sid, _, cid = line[len("session=") :].partition(" call-id=")
                return sid.strip(), cid.strip()
        if uas.proc is not None and uas.proc.poll() is not None:
            return None
        time.sleep(0.05)
    return None


def send_result_info(uas_port: int, call_id: str, headers: list[tuple[str, str]]) -> None:
    """Hand the stand-in FreeSWITCH the headers of its BYE (what sip_bye_h_* would be)."""
    body = "\r\n".join(f"{name}: {value}" for name, value in headers)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        msg = (
            f"INFO sip:payivr@127.0.0.1:{uas_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{secrets.token_hex(8)}\r\n"
            f"From: <sip:esl@127.0.0.1>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:payivr@127.0.0.1:{uas_port}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INFO\r\nMax-Forwards: 70\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body.encode())}\r\n\r\n{body}"
        )
        s.sendto(msg.encode(), ("127.0.0.1", uas_port))


def received_bye_headers(uac: Sipp) -> list[tuple[str, str]]:
    """The X-Pay-* headers of the BYE the contact center received."""
    text = uac.text(uac.messages)
    start = text.find("\nBYE sip:")
    if start < 0:
        return []
    headers = []
    for line in text[start + 1 :].splitlines()[1:]:
        if not line.strip():
            break
        name, sep, value = line.partition(":")
        if sep and name.strip().lower().startswith("x-pay-"):
            headers.append((name.strip(), value.strip()))
    return headers
