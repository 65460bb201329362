"""Agent mode with a real FreeSWITCH: SIPp caller -> FreeSWITCH -> SIPp agent.

Skipped with the reason where FreeSWITCH is not installed (FREESWITCH_BIN, or
`freeswitch` on PATH) or SIPp is missing. What it proves, from the agent's RTP:

* while a payment runs, the agent's leg receives no RFC 2833 event but the masking
  digit, and no DTMF tone energy in its audio, although the caller keys a card number;
* after the payment (cancelled by the agent here, which also checks cancel on a real
  call) DTMF reaches the agent again;
* the result reaches the agent's phone as a SIP INFO.

The timing does not depend on prompt lengths: the guard is on from the payment's
start to its end, and the caller's card keys fall well inside that window.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from payivr.stack.rtp_pcap import EVENT_PT, PCMA_PT, Keying, decode_events, keyed_call
from payivr.stack.up import find_freeswitch
from tests.agent.harness import AgentStack, SseReader
from tests.support.dtmf_detector import alaw_samples, detect
from tests.support.servers import free_port, stop_process, wait_for_tcp

HERE = Path(__file__).parent
PAN = "4111111111111111"
FREESWITCH = find_freeswitch()

pytestmark = [
    pytest.mark.integration,
    pytest.mark.freeswitch,
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        FREESWITCH is None,
        reason="FreeSWITCH is not installed here (set FREESWITCH_BIN or put freeswitch on "
        "PATH; production hosts get it from the vendor's repository, see ansible/)",
    ),
    pytest.mark.skipif(
        shutil.which("sipp") is None, reason="needs sipp (apt-get install sip-tester)"
    ),
]


class RtpSink:
    """The agent phone's media port: records (arrival time, payload type, ts, payload)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.packets: list[tuple[float, int, int, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except OSError:
                continue
            if len(data) > 12:
                pt, ts = data[1] & 0x7F, int.from_bytes(data[4:8], "big")
                self.packets.append((time.monotonic(), pt, ts, data[12:]))

    def between(self, start: float, end: float) -> list[tuple[int, int, bytes]]:
        return [(pt, ts, p) for t, pt, ts, p in self.packets if start <= t <= end]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def start_freeswitch(
    workdir: Path, stack: AgentStack, sip_port: int, es_port: int
) -> subprocess.Popen[bytes]:
    from payivr.core.config import parse_config
    from payivr.freeswitch.render import render_tree, write_tree
    from payivr.freeswitch.settings import freeswitch_settings
    from payivr.prompts_build import build_prompts

    data = dict(stack.config.raw)
    data = yaml.safe_load(yaml.safe_dump(data))
    data["secrets_file"] = str(stack.config.path.parent / "secrets.yaml")
    data["services"]["freeswitch_nodes"] = [f"sip:127.0.0.1:{sip_port}"]
    data["services"]["esl"]["event_socket"]["port"] = es_port
    # The renderer adds the agent service's secure-trunk extension itself when
    # services.agent_api is configured: point it at this test's agent service.
    data["services"]["agent_api"]["esl_listen_port"] = stack.settings.esl_listen_port
    config = parse_config(data, base_dir=stack.config.path.parent, path=stack.config.path)
    settings = freeswitch_settings(config)
    # The real prompts, not the harness's short silences (build_prompts keeps files
    # that are already there).
    shutil.rmtree(settings.prompts_dir, ignore_errors=True)
    build_prompts(settings.prompts_dir, languages=["en"])
    tree = render_tree(settings)
    dialplan = tree["dialplan/payivr.xml"]
    assert dialplan.count('name="payivr-agent-trunk"') == 1, "rendered once, by the renderer"
    assert f"127.0.0.1:{stack.settings.esl_listen_port}" in dialplan
    conf = workdir / "fs" / "conf"
    write_tree(tree, conf)
    argv = [str(FREESWITCH), "-nf", "-nc", "-nonat", "-conf", str(conf)]
    for name in ("log", "db", "run", "temp", "storage", "cache", "recordings", "certs"):
        (workdir / "fs" / name).mkdir(parents=True, exist_ok=True)
        argv += [f"-{name}", str(workdir / "fs" / name)]
    log = (workdir / "fs" / "freeswitch.out").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    wait_for_tcp(es_port, 30)
    return proc


def start_agent_call(
    tmp_path: Path,
    *,
    sip_port: int,
    agent_port: int,
    sink_port: int,
    session_id: str,
    pcap: Path,
    pause_ms: int,
    timeout_s: int,
    record_route: bool = False,
) -> list[subprocess.Popen[bytes]]:
    """The SIPp agent (answering, sending its media to ``sink_port``) and the SIPp
    caller transferred to FreeSWITCH for that agent, playing ``pcap`` and hanging up
    after ``pause_ms``; started in that order, their scenarios written in tmp_path.

    ``record_route``: the agent's phone sits behind a proxy and copies its
    Record-Route (RFC 3261 12.1.1), so FreeSWITCH's ACK, INFOs and BYE come back
    through Kamailio."""
    uas = (HERE / "sipp" / "uas-agent-sink-takes-info.xml").read_text()
    if record_route:
        uas = uas.replace('<recv request="INVITE"/>', '<recv request="INVITE" rrs="true"/>')
        uas = uas.replace("[last_CSeq:]\nContact", "[last_CSeq:]\n[last_Record-Route:]\nContact", 1)
        assert "[last_Record-Route:]" in uas
    (tmp_path / "uas.xml").write_text(uas.replace("SINK_PORT", str(sink_port)))
    uac = (
        (HERE / "sipp" / "uac-agent-trunk-keys-then-bye.xml").read_text()
        .replace("SESSION_ID", session_id)
        .replace("AGENT_URI", f"sip:1001@127.0.0.1:{agent_port}")
        .replace("PCAP", str(pcap))
        .replace("PAUSE_MS", str(pause_ms))
    )  # fmt: skip
    (tmp_path / "uac.xml").write_text(uac)
    common = ["-i", "127.0.0.1", "-t", "u1", "-nostdin", "-m", "1", "-trace_err"]
    agent = subprocess.Popen(
        ["sipp", "-sf", "uas.xml", "-p", str(agent_port), *common, "-error_file", "uas.err",
         "-trace_msg", "-message_file", "agent_msgs.log"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    caller = subprocess.Popen(
        ["sipp", f"127.0.0.1:{sip_port}", "-sf", "uac.xml", "-p", str(free_port()),
         "-mp", str(free_port(socket.SOCK_DGRAM)), *common, "-error_file", "uac.err",
         "-timeout", f"{timeout_s}s"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return [agent, caller]


def test_agent_hears_no_card_dtmf_and_dtmf_flows_again_after(
    tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    stack = AgentStack(tmp_path, redis_url).start()
    sip_port, es_port = free_port(), free_port()
    fs = start_freeswitch(tmp_path, stack, sip_port, es_port)
    sink = RtpSink()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        session_id = secrets.token_urlsafe(16)
        stack.redis.hset(
            f"payivr:session:{session_id}",
            mapping={"id": session_id, "merchant": "acme", "mode": "agent"},
        )
        agent_port = free_port()
        # The card is keyed while the payment's prompts play (from ~6 s), the "5" after
        # the agent cancelled it (~14 s); the caller hangs up at 23 s.
        pcap = keyed_call(
            tmp_path / "caller.pcap", [Keying(6.0, PAN + "#"), Keying(19.0, "5")], tail_s=2.0
        )
        procs += start_agent_call(
            tmp_path,
            sip_port=sip_port,
            agent_port=agent_port,
            sink_port=sink.port,
            session_id=session_id,
            pcap=pcap,
            pause_ms=23000,
            timeout_s=60,
        )
        call = stack.find_call(agent="1001", timeout=15)
        answered = time.monotonic()  # within a few hundred ms of the answer
        sse = SseReader(stack, call["call"])
        r = stack.api(
            "POST",
            f"/v1/calls/{call['call']}/payments",
            body={"operation": "sale", "order": "F6001", "amount": 1250},
        )
        assert r.status_code == 202, r.text
        payment = r.json()["payment"]
        sse.wait(lambda e: e["type"] == "payment.started", 5)
        guard_on = time.monotonic()  # the guard goes on as the payment starts
        assert guard_on - answered < 5.0, "the payment started after the card was keyed"
        # The card field opens once the greeting and amount have played (real prompts).
        sse.wait(lambda e: e.get("field") == "card_number" and e.get("status") == "waiting", 20)
        # The caller keys the card from ~6 s to ~11 s after the answer: cancel after.
        time.sleep(max(0.0, answered + 12.5 - time.monotonic()))
        assert (
            stack.api("POST", f"/v1/calls/{call['call']}/payments/{payment}/cancel").status_code
            == 202
        )
        result = sse.wait(lambda e: e["type"] == "payment.result", 15)
        guard_off = time.monotonic()
        assert result["result"]["reason"] == "cancelled-by-agent"
        # The card was collected on the running bridge (the digit machine's events).
        card = [e for e in sse.events if e.get("field") == "card_number"]
        assert card[-1]["status"] == "valid" and card[-1]["digit_count"] == 16, card
        # The spoken prompts were mixed into the caller's leg (FreeSWITCH said +OK to
        # each uuid_displace) and waited for: the card field opened after them.
        assert "prompt was not mixed in" not in caplog.text
        opened_at = sse.received_at[sse.events.index(card[0])]
        assert opened_at - guard_on > 2.0, "the greeting and the amount were played first"
        assert procs[1].wait(40) == 0, (tmp_path / "uac.err").read_text(errors="replace")

        during = sink.between(guard_on, guard_off)
        after = sink.between(guard_off, time.monotonic())
        # While the payment's applications run on the caller's leg FreeSWITCH suspends
        # the bridge (CF_SUSPEND): the agent's leg gets little or no RTP then. Outside
        # the payment the caller's audio reaches the agent (the checks are not vacuous).
        outside = [
            p for t, pt, _, p in sink.packets if pt == PCMA_PT and not guard_on <= t <= guard_off
        ]
        assert len(outside) > 100, "audio reached the agent outside the payment"
        masked = decode_events([p for p in during if p[0] == EVENT_PT])
        assert set(masked) <= {"0"}, f"the agent got {masked!r} while the card was keyed"
        assert detect(alaw_samples([p for pt, _, p in during if pt == PCMA_PT])) == []
        assert "5" in decode_events([p for p in after if p[0] == EVENT_PT]), "DTMF flows again"
        messages = (tmp_path / "agent_msgs.log").read_text(errors="replace")
        assert "INFO sip:" in messages and "X-Pay-Result: cancelled" in messages
        assert PAN not in messages and PAN not in stack.redis_dump()
        assert PAN not in (tmp_path / "fs" / "freeswitch.out").read_text(errors="replace")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)
        sink.close()
        stop_process(fs, grace_s=15)
        stack.close()
