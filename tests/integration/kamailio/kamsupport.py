"""Helpers for the Kamailio integration tests: configs, signed headers, SIPp runs.

SIPp scenarios live in tests/sipp/ and take their headers from an injection file:
fields 0..13 are whole header lines, padded with a harmless `X-Test-Pad` header. The
signature covers the Call-ID, so the test fixes it in advance: SIPp builds it from
`-cid_str <prefix>-%u@cti.test` (%u is the call number, 1, 2, ...), see call_id().
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from payivr.core.request import SIGNED_REQUEST_HEADERS
from payivr.core.signature import sign
from tests.support.servers import stop_process

REPO = Path(__file__).resolve().parents[3]
SIPP_DIR = REPO / "tests" / "sipp"
HEADER_FIELDS = 14
PAD = "X-Test-Pad: -"

SECRETS = {
    "acme_signing": "test-signing-secret-acme",
    "acme_callback": "test-callback-secret-acme",
    "beta_signing": "test-signing-secret-beta",
    "beta_callback": "test-callback-secret-beta",
    "freeswitch_esl": "test-esl",
    "sandbox_token": "test-sandbox-token-key-0123456789abcdef",
}

CONFIG_TEMPLATE = """\
secrets_file: {secrets}
services:
  redis: {{url: "{redis_url}"}}
  session_ttl_s: 600
  kamailio:
    advertise_host: payivr.test
    listen: [{{proto: udp, host: 127.0.0.1, port: 5060}}]
    rate_limit: {{per_source_per_s: {per_source}, per_merchant_per_s: {per_merchant},
                 retry_after_s: {retry_after}}}
  freeswitch_nodes: [{nodes}]
  esl:
    event_socket: {{host: 127.0.0.1, port: 8021, password: "file:freeswitch_esl"}}
merchants:
  acme:
    signing_secret: "file:acme_signing"
    callback_secret: "file:acme_callback"
    sources: [127.0.0.1/32]
    signing: {{required: true, window_s: 300}}
    processor: {{type: sandbox, token_secret: "file:sandbox_token"}}
    currencies: [EUR, USD]
    max_amount: 1000000
    callback_hosts: [127.0.0.1]
    allow_http_callbacks: true
    return_hosts: [127.0.0.1, localhost]
    default_return: hangup
  beta:
    signing_secret: "file:beta_signing"
    callback_secret: "file:beta_callback"
    sources: [192.0.2.0/24]
    processor: {{type: sandbox, token_secret: "file:sandbox_token"}}
    return_hosts: [cc.beta.example]
flows:
  files: [{flow}]
  sources: [127.0.0.1/32]
  entry_points:
    support: {{number: "8000", flow: hang-up}}
    partner: {{header: {{name: X-Payivr-Entry, value: partner}}, flow: hang-up}}
    elsewhere: {{number: "8001", flow: hang-up, sources: [192.0.2.0/24]}}
"""

# Kamailio's routing tests need a flow to exist, not its behaviour.
HANG_UP_FLOW = """\
flow: hang-up
description: Hangs up at once.
start: bye
activities:
  bye: {type: hangup}
"""


def write_config(
    directory: Path,
    *,
    redis_url: str,
    nodes: list[str],
    per_source: int = 10000,
    per_merchant: int = 10000,
    retry_after: int = 7,
) -> Path:
    """A payivr config for one Kamailio under test; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    secrets_path = directory / "secrets.yaml"
    secrets_path.write_text("".join(f"{k}: {v}\n" for k, v in SECRETS.items()))
    flow_path = directory / "hang-up.yaml"
    flow_path.write_text(HANG_UP_FLOW)
    path = directory / "payivr.yaml"
    path.write_text(
        CONFIG_TEMPLATE.format(
            secrets=secrets_path,
            flow=flow_path,
            redis_url=redis_url,
            per_source=per_source,
            per_merchant=per_merchant,
            retry_after=retry_after,
            nodes=", ".join(nodes),
        )
    )
    return path


def new_prefix() -> str:
    return secrets.token_hex(6)


def call_id(prefix: str, number: int = 1) -> str:
    """The Call-ID SIPp gives call `number` of a run with this prefix."""
    return f"{prefix}-{number}@cti.test"


def sale_fields(**overrides: str | None) -> dict[str, str]:
    """A valid sale for acme; an override of None drops the header."""
    fields: dict[str, str | None] = {
        "X-Pay-Merchant": "acme",
        "X-Pay-Operation": "sale",
        "X-Pay-Order": "A1001",
        "X-Pay-Amount": "1250",
        "X-Pay-Currency": "EUR",
        "X-Pay-Language": "en",
        "X-Pay-Timestamp": str(int(time.time())),
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


def signed(
    fields: dict[str, str], call_id: str, secret: str = SECRETS["acme_signing"]
) -> dict[str, str]:
    """The fields plus X-Pay-Signature over them (SPEC 3)."""
    lowered = {k.lower(): v for k, v in fields.items()}
    return {
        **fields,
        "X-Pay-Signature": sign(secret.encode(), lowered, call_id, SIGNED_REQUEST_HEADERS),
    }


@dataclass
class Call:
    """One row of an injection file: the header lines of one INVITE."""

    lines: list[str]

    @classmethod
    def of(cls, fields: dict[str, str], extra: list[str] | None = None) -> Call:
        return cls([f"{k}: {v}" for k, v in fields.items()] + (extra or []))

    def row(self) -> str:
        lines = self.lines + [PAD] * (HEADER_FIELDS - len(self.lines))
        if len(lines) > HEADER_FIELDS or any(";" in x for x in lines):
            raise ValueError("at most 14 header lines, and no ';' (the CSV separator)")
        return ";".join(lines)


def signed_sale(cid: str, **overrides: str | None) -> Call:
    """A valid, signed acme sale for this Call-ID; overrides change fields before signing."""
    return Call.of(signed(sale_fields(**overrides), cid))


def write_injection(path: Path, calls: list[Call]) -> Path:
    path.write_text("SEQUENTIAL\n" + "".join(c.row() + "\n" for c in calls))
    return path


def sipp_binary() -> str:
    binary = shutil.which("sipp")
    if binary is None:
        raise RuntimeError("sipp not installed (apt-get install sip-tester)")
    return binary


@dataclass
class SippResult:
    returncode: int
    output: str
    log: str
    errors: str

    def explain(self) -> str:
        return (
            f"sipp exit {self.returncode}\n--- errors\n{self.errors[-3000:]}\n"
            f"--- log\n{self.log[-2000:]}\n--- output\n{self.output[-2000:]}"
        )


def run_uac(
    scenario: str,
    target_port: int,
    calls: list[Call],
    workdir: Path,
    *,
    prefix: str,
    local_port: int,
    rate: int = 10,
    timeout_s: int = 20,
    extra: tuple[str, ...] = (),
) -> SippResult:
    """Run a UAC scenario for the given calls against Kamailio on 127.0.0.1."""
    workdir.mkdir(parents=True, exist_ok=True)
    stem = f"{scenario}-{secrets.token_hex(3)}"
    inf = write_injection(workdir / f"{stem}.csv", calls)
    log, err = workdir / f"{stem}.log", workdir / f"{stem}.err"
    cmd = [
        sipp_binary(),
        f"127.0.0.1:{target_port}",
        "-sf",
        str(SIPP_DIR / f"{scenario}.xml"),
        "-inf",
        str(inf),
        "-m",
        str(len(calls)),
        "-r",
        str(rate),
        "-i",
        "127.0.0.1",
        "-p",
        str(local_port),
        "-t",
        "u1",
        "-nostdin",
        "-cid_str",
        f"{prefix}-%u@cti.test",
        "-timeout",
        f"{timeout_s}s",
        "-timeout_error",
        "-trace_logs",
        "-log_file",
        str(log),
        "-trace_err",
        "-error_file",
        str(err),
        "-max_recv_loops",
        "1000",
        *extra,
    ]
    proc = subprocess.run(
        cmd, cwd=workdir, capture_output=True, timeout=timeout_s + 15, check=False
    )
    return SippResult(proc.returncode, proc.stdout.decode(errors="replace"), _read(log), _read(err))


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


class SippUas:
    """A SIPp UAS standing in for a FreeSWITCH node, answering OPTIONS probes (-aa)."""

    def __init__(
        self,
        scenario: str,
        port: int,
        workdir: Path,
        scenario_dir: Path = SIPP_DIR,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.scenario = scenario
        self.extra = extra
        self.scenario_dir = scenario_dir
        self.port = port
        self.workdir = workdir
        self.log_path = workdir / f"{scenario}-{port}.log"
        self.err_path = workdir / f"{scenario}-{port}.err"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SippUas:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sipp_binary(),
            "-sf",
            str(self.scenario_dir / f"{self.scenario}.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-t",
            "u1",
            "-nostdin",
            "-aa",
            "-trace_logs",
            "-log_file",
            str(self.log_path),
            "-trace_err",
            "-error_file",
            str(self.err_path),
            *self.extra,
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(0.2)
        if self.proc.poll() is not None:
            raise RuntimeError(f"sipp UAS exited: {_read(self.err_path)}")
        return self

    def log(self) -> str:
        return _read(self.log_path)

    def errors(self) -> str:
        return _read(self.err_path)

    def sessions(self) -> dict[str, str]:
        """Call-ID -> X-Payivr-Session, from the UAS's log lines."""
        out = {}
        for line in self.log().splitlines():
            if line.startswith("session="):
                sid, _, rest = line[len("session=") :].partition(" call-id=")
                out[rest.strip().split(" ")[0]] = sid.strip()
        return out

    def wait_for_calls(self, count: int, timeout: float = 5.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.sessions()
            if len(found) >= count:
                return found
            time.sleep(0.05)
        return self.sessions()

    def stop(self) -> None:
        stop_process(self.proc, grace_s=2)
        self.proc = None


def send_raw_invite(target_port: int, call: Call, cid: str) -> None:
    """Fire one INVITE over UDP without waiting for anything (to fill a rate counter)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        head = (
            f"INVITE sip:pay@127.0.0.1:{target_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
            f"From: <sip:cti@127.0.0.1:{port}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:pay@127.0.0.1:{target_port}>\r\n"
            f"Call-ID: {cid}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
            f"Contact: <sip:cti@127.0.0.1:{port}>\r\n"
        )
        headers = "".join(line + "\r\n" for line in call.lines)
        # An early offer, as admission requires (SPEC 4: a late offer is a 488).
        sdp = (
            "v=0\r\no=cti 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        )
        tail = f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
        s.sendto((head + headers + tail).encode(), ("127.0.0.1", target_port))


def traced_request_headers(trace: str, method: str) -> dict[str, str]:
    """The headers (lowercase names) of the first `method` request SIPp received, from
    its message trace (`-trace_msg -message_file`)."""
    start = trace.find(f"\n{method} sip:")
    if start < 0:
        return {}
    headers = {}
    for line in trace[start + 1 :].splitlines()[1:]:
        if not line.strip():
            break
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers
