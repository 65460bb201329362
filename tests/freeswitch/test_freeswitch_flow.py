"""The reference flow through a real FreeSWITCH (FREESWITCH_BIN, else skipped).

A SIPp caller with a known ANI calls entry point 8000 through Kamailio, which relays
it to FreeSWITCH without a payment session (docs/flows.md); FreeSWITCH's payivr-flow
extension hands it to the ESL application, which
runs flows/zendesk-caller-aware.yaml against the fake Zendesk: the caller hears the
ticket's status (mod_say and the flow's prompts, executed by FreeSWITCH), presses 1,
waits in the mod_fifo queue hearing the music (RTP arriving at the caller's media
address), a SIPp agent (the fifo's outbound member, by SIP URI) answers, they talk,
the caller hangs up; the comment worker delivers the after-call comment to the fake
Zendesk exactly once. A caller who presses 2 hears the goodbye and is hung up on,
and the ticket gets its comment.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time
import wave
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import yaml

from payivr.core.config import load_config
from payivr.core.flow import load_flow
from payivr.core.result import SIGNED_RESULT_HEADERS
from payivr.core.signature import verify, verify_callback
from payivr.flows.media_build import flow_media
from payivr.stack.demo import DEMO_CVV
from payivr.stack.demo_freeswitch import caller_keying
from payivr.stack.ports import free_port, free_udp_block
from payivr.stack.receiver import CallbackReceiver
from payivr.stack.rtp_pcap import Keying, keyed_call, rtp_packets
from payivr.stack.sipp import Sipp
from payivr.stack.up import StackState
from payivr.store.connect import redis_from_url
from tests.conftest import EXAMPLE_CONFIG
from tests.freeswitch.engine_marks import FREESWITCH, NEEDS_FREESWITCH
from tests.freeswitch.inbound import CallWatcher
from tests.integration.connectors.zdsupport import TOKEN_ENV, connector_doc
from tests.support.fake_zendesk import FakeZendesk
from tests.support.pci import find_card_data

pytestmark = NEEDS_FREESWITCH
REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "flows" / "zendesk-caller-aware.yaml"
SIPP = Path(__file__).parent / "sipp"
ANI = "+34600111222"
RING_S = 5.0  # the agent rings this long: the caller hears the music meanwhile
FLOW = "zendesk-caller-aware"
PAN = "4111111111111111"
PAY_ENTRY = "8100"
# A merchant's own flow that takes a payment at once and hands the caller on with
# the signed result (the contact center's queue, here the caller's own UAC).
PAY_FLOW = """
flow: pay-invoice
language: en
start: take
activities:
  take:
    type: pay
    merchant: acme
    amount: "1250"
    currency: EUR
    order: "INV{ani_digits}"
    callback_url: CALLBACK
    next: back
  back:
    type: transfer
    uri: "sip:billing@127.0.0.1:5999"
    payment_headers: true
"""


class RtpPhone:
    """The caller's media: counts the RTP FreeSWITCH sends (by arrival time) and, from
    the first packet on (the call is answered), sends the caller's stream back to
    where it came from (symmetric RTP): PCMA silence, keys as RFC 2833 events."""

    def __init__(self, port: int, keyings: list[Keying], total_s: float) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.packets = rtp_packets(keyings, total_s)
        self.arrivals: list[float] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._receive, daemon=True)]
        self._threads[0].start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                _, peer = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            self.arrivals.append(time.time())
            if len(self._threads) == 1:
                sender = threading.Thread(target=self._send, args=(peer,), daemon=True)
                self._threads.append(sender)
                sender.start()

    def _send(self, peer: tuple[str, int]) -> None:
        start = time.monotonic()
        for p in self.packets:
            delay = start + p.time_s - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            header = struct.pack("!BBHII", 0x80, (0x80 if p.marker else 0) | p.payload_type,
                                 p.seq, p.timestamp & 0xFFFFFFFF, 0x5041594E)  # fmt: skip
            self.sock.sendto(header + p.payload, peer)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self.sock.close()


def seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


@pytest.fixture(scope="module")
def zendesk() -> Iterator[FakeZendesk]:
    fake = FakeZendesk()
    fake.add_user(501, "Ana García", ANI, locale="es-ES")
    fake.add_ticket(8123, 501, "open", "2026-12-01T10:00:00Z")
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[CallbackReceiver]:
    """The merchant's callback endpoint for the payments flows take."""
    server = CallbackReceiver().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, zendesk: FakeZendesk, receiver: CallbackReceiver
) -> Iterator[tuple[StackState, Path, int]]:
    from payivr.stack.up import stack_down, stack_up

    root = tmp_path_factory.mktemp("fsflow")
    pay_flow = root / "pay-invoice.yaml"
    pay_flow.write_text(PAY_FLOW.replace("CALLBACK", receiver.url))
    agent_port = free_port()
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["secrets_file"] = str((EXAMPLE_CONFIG.parent / data["secrets_file"]).resolve())
    prompts = (EXAMPLE_CONFIG.parent / data["services"]["esl"]["prompts_dir"]).resolve()
    data["services"]["esl"]["prompts_dir"] = str(prompts)
    data["connectors"] = {"zendesk": connector_doc(zendesk)}
    data["flows"] = {
        "files": [str(REFERENCE), str(pay_flow)],
        "sources": ["127.0.0.1/32"],
        "entry_points": {"support": {"number": "8000", "flow": FLOW},
                         "billing": {"number": PAY_ENTRY, "flow": "pay-invoice"}},
        "queues": {"support": {"agents": [f"sip:agent1@127.0.0.1:{agent_port}"],
                               "ring_timeout_s": 30}},
    }  # fmt: skip
    config = root / "payivr.yaml"
    config.write_text(yaml.safe_dump(data))
    flow_media([load_flow(REFERENCE)], prompts)
    previous = os.environ.get(TOKEN_ENV)
    os.environ[TOKEN_ENV] = zendesk.api_token  # the stack's processes read the token
    state = stack_up(config, root / "stack", freeswitch=FREESWITCH)
    try:
        yield state, prompts, agent_port
    finally:
        stack_down(root / "stack")
        if previous is None:
            os.environ.pop(TOKEN_ENV, None)
        else:
            os.environ[TOKEN_ENV] = previous


def sipp(name: str, scenario: str, workdir: Path, replace: dict[str, str], *args: str) -> Sipp:
    text = (SIPP / scenario).read_text()
    for key, value in replace.items():
        text = text.replace(key, value)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / scenario
    path.write_text(text)
    return Sipp(name, ["-sf", str(path), "-m", "1", "-mp", str(free_udp_block()), *args], workdir)


@pytest.mark.timeout(150)
def test_known_caller_hears_status_presses_1_waits_with_music_agent_answers_comment_once(
    stack: tuple[StackState, Path, int], zendesk: FakeZendesk
) -> None:
    state, prompts, agent_port = stack
    workdir = Path(state.workdir) / "flow-call"
    workdir.mkdir(parents=True, exist_ok=True)
    menu_at = menu_start(prompts)
    keyings = [Keying(menu_at + 1.0 + 2.5 * i, "1") for i in range(5)]
    talk_end = menu_at + 14 + RING_S + 4.0  # queue-welcome, the ring, a few seconds' talk
    media_port = free_port()
    sink = RtpPhone(media_port, keyings, talk_end)
    agent = sipp("agent", "uas-agent-rings-answers-expect-bye.xml", workdir,
                 {"RING_MS": str(int(RING_S * 1000))}, "-p", str(agent_port),
                 "-timeout", "120s", "-timeout_error").start()  # fmt: skip
    port = state.ports["event_socket"]

    es = load_config(Path(state.config)).services.esl.event_socket
    try:
        with CallWatcher(port, es.password.value()) as watcher:
            caller = sipp(
                "caller", "uac-flow-caller-presses-keys-then-bye.xml", workdir,
                {"ENTRY": "8000", "ANI": ANI, "MEDIA_PORT": str(media_port),
                 "PAUSE_MS": str(int(talk_end * 1000))},
                f"127.0.0.1:{state.ports['kamailio']}", "-p", str(free_port()),
                "-timeout", "120s", "-timeout_error",
            ).start()  # fmt: skip
            rc = caller.wait(130)
            caller.stop()
            assert rc == 0, caller.explain()[-4000:]
            agent_rc = agent.wait(20)
            time.sleep(1.0)
        events = list(watcher.watch.events)
    finally:
        sink.close()
        agent.stop()
    executed = [
        (e.get("Application"), e.get("Application-Data"))
        for e in events
        if e.get("Event-Name") == "CHANNEL_EXECUTE"
    ]
    assert agent_rc == 0, ("\n".join(map(str, executed)), agent.explain()[-3000:])
    # Heard: the flow's prompts in the caller's language, the ticket id by mod_say.
    assert ("say", "es NUMBER ITERATED 8123") in executed, executed
    status = str(prompts / "es" / "flows" / FLOW / "status-open.wav")
    assert ("playback", status) in executed
    assert ("fifo", "support in") in executed
    # Waited with music: RTP reached the caller between entering the queue and the
    # agent's answer (the bridge).
    entered = min(
        int(e["Event-Date-Timestamp"]) / 1e6
        for e in events
        if e.get("Event-Name") == "CHANNEL_EXECUTE" and e.get("Application") == "fifo"
    )
    bridged = min(
        int(e["Event-Date-Timestamp"]) / 1e6
        for e in events
        if e.get("Event-Name") == "CHANNEL_BRIDGE"
    )
    assert bridged - entered > RING_S - 1.0
    waiting = [t for t in sink.arrivals if entered + 0.5 < t < bridged - 0.2]
    expected = (bridged - entered - 0.7) / 0.02
    assert len(waiting) > 0.8 * expected, (len(waiting), expected)
    # The comment: delivered once by the comment worker (the stack's callbacks service).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not zendesk.comments.get(8123):
        time.sleep(0.2)
    time.sleep(2.0)  # a duplicate would arrive meanwhile
    assert len(zendesk.comments.get(8123, [])) == 1, zendesk.comments
    body = zendesk.comments[8123][0]["body"]
    assert body.startswith("payivr call to entry support: menu choice 1; queue answered after ")
    assert body.endswith("call ended by flow.")


def menu_start(prompts: Path) -> float:
    """Seconds from the answer to the menu: welcome, the status sentence, the id."""
    at = 1.5 + seconds(prompts / "en" / "flows" / FLOW / "welcome.wav")
    at += seconds(prompts / "es" / "flows" / FLOW / "ticket-status.wav") + 3.0
    return at + seconds(prompts / "es" / "flows" / FLOW / "status-open.wav")


@pytest.mark.timeout(120)
def test_known_caller_presses_2_is_disconnected_and_the_ticket_gets_a_comment(
    stack: tuple[StackState, Path, int], zendesk: FakeZendesk
) -> None:
    state, prompts, _ = stack
    workdir = Path(state.workdir) / "flow-call-2"
    workdir.mkdir(parents=True, exist_ok=True)
    before = len(zendesk.comments.get(8123, []))
    keyings = [Keying(menu_start(prompts) + 1.0 + 2.5 * i, "2") for i in range(4)]
    media_port = free_port()
    phone = RtpPhone(media_port, keyings, keyings[-1].start_s + 2.0)
    try:
        caller = sipp(
            "caller", "uac-flow-caller-presses-keys-expect-bye.xml", workdir,
            {"ENTRY": "8000", "ANI": ANI, "MEDIA_PORT": str(media_port)},
            f"127.0.0.1:{state.ports['kamailio']}", "-p", str(free_port()),
            "-timeout", "90s", "-timeout_error",
        ).start()  # fmt: skip
        rc = caller.wait(100)
        caller.stop()
        assert rc == 0, caller.explain()[-4000:]  # the flow hung up (the BYE came)
    finally:
        phone.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(zendesk.comments.get(8123, [])) == before:
        time.sleep(0.2)
    time.sleep(2.0)
    comments = zendesk.comments.get(8123, [])
    assert len(comments) == before + 1, comments
    assert "menu choice 2; queue not-queued after 0 s; call ended by flow." in comments[-1]["body"]


@pytest.mark.timeout(120)
def test_a_flow_takes_a_payment_approved_with_signed_headers_and_one_callback(
    stack: tuple[StackState, Path, int], receiver: CallbackReceiver
) -> None:
    state, _, _ = stack
    config = load_config(Path(state.config))
    merchant = config.merchant("acme")
    assert merchant is not None
    workdir = Path(state.workdir) / "flow-pay"
    workdir.mkdir(parents=True, exist_ok=True)
    # `pay` is the flow's first activity: the caller hears the capture plan's prompts
    # as a transferred payment's caller does, and keys at the same times.
    keyings = caller_keying(config.services.esl.prompts_dir, "en", merchant, PAN, DEMO_CVV,
                            date.today())  # fmt: skip
    pcap = keyed_call(workdir / "caller.pcap", keyings)
    before = len(receiver.received)
    es = config.services.esl.event_socket
    with CallWatcher(es.port, es.password.value()) as watcher:
        caller = sipp(
            "caller", "uac-flow-caller-keys-card-accepts-refer.xml", workdir,
            {"ENTRY": PAY_ENTRY, "ANI": ANI, "@PCAP@": str(pcap)},
            f"127.0.0.1:{state.ports['kamailio']}", "-p", str(free_port()),
            "-timeout", "90s", "-timeout_error",
        ).start()  # fmt: skip
        rc = caller.wait(100)
        caller.stop()
        assert rc == 0, caller.explain()[-4000:]
        time.sleep(1.0)
    trace = caller.messages.read_text(errors="replace")
    refer = sip_headers(trace, "REFER sip:")
    assert refer["refer-to"].strip("<>") == "sip:billing@127.0.0.1:5999", refer
    call_id = sip_headers(trace, "INVITE sip:")["call-id"]
    # The result headers as on a transferred payment's return: signed over the
    # dialog's Call-ID, the card masked, nothing of the request.
    assert refer.get("x-pay-result") == "approved", refer
    assert refer["x-pay-card"] == "************1111"
    assert verify(
        merchant.signing_secret.encode(),
        {k: v for k, v in refer.items() if k in SIGNED_RESULT_HEADERS},
        call_id,
        refer["x-pay-signature"],
        SIGNED_RESULT_HEADERS,
    )
    for name in ("x-pay-merchant", "x-payivr-session", "x-pay-callback-url"):
        assert name not in refer, name
    assert f"127.0.0.1:{state.ports['kamailio']}" in refer.get("via", ""), "via Kamailio"
    # One signed callback, as for a transferred payment.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(receiver.received) == before:
        time.sleep(0.2)
    time.sleep(2.0)  # a duplicate would arrive meanwhile
    (callback,) = receiver.received[before:]
    assert verify_callback(merchant.callback_secret.encode(), callback.body,
                           callback.headers.get("X-Payivr-Signature", ""))  # fmt: skip
    body = json.loads(callback.body)
    assert (body["result"], body["order"], body["amount"]) == ("approved", "INV34600111222", 1250)
    assert body["session_id"] == refer["x-pay-session"]
    # PCI: the card's digits nowhere: the stack's logs, traces and Redis' files (the
    # caller's pcap excluded), FreeSWITCH's events, the callback and the headers.
    client = redis_from_url(config.services.redis.url)
    try:
        dump = [json.dumps(f) for _, f in client.xrange("payivr:events")]
        dump += [json.dumps(client.hgetall(k)) for k in client.scan_iter("payivr:*")
                 if client.type(k) == b"hash"]  # fmt: skip
    finally:
        client.close()
    texts = [path.read_text(errors="replace") for path in Path(state.workdir).rglob("*")
             if path.is_file() and path.suffix != ".pcap"]  # fmt: skip
    texts += [*dump, callback.body.decode(), json.dumps(callback.headers), json.dumps(refer)]
    texts += [
        json.dumps(e)
        for e in watcher.watch.events
        if e.get("Event-Name") != ("CHANNEL_EXECUTE_COMPLETE")
    ]  # play_and_get_digits' own completion carries them
    assert find_card_data("\n".join(texts), pans=(PAN,)) == []


def sip_headers(trace: str, start: str) -> dict[str, str]:
    """Headers (by lower-case name) of the first message of a SIPp trace whose start
    line begins with `start`."""
    at = trace.find("\n" + start)
    assert at >= 0, f"no {start!r} in the trace"
    headers: dict[str, str] = {}
    for line in trace[at + 1 :].split("\n")[1:]:
        line = line.rstrip("\r")
        if not line:
            break
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return headers
