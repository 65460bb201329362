"""A payment call encrypted end to end: SIP over TLS both hops, SRTP on the media.

The contact center and its caller are a second FreeSWITCH started by the test
(tests/freeswitch/contact_center.py): it calls Kamailio's mutual-TLS listener with its
client certificate and the signed `X-Pay-*` headers, offers SRTP only
(AES_CM_128_HMAC_SHA1_80), plays a known sound, and keys the sandbox card with
`uuid_send_dtmf` (RFC 2833 events) when payivr's IVR prompts for each field.
Kamailio relays over TLS to payivr's FreeSWITCH (a `;transport=tls` node, whose
profile verifies Kamailio's certificate), which has `services.freeswitch.srtp:
mandatory`; merchant acme has `require_srtp`.

tcpdump captures the call on loopback, on this test's ports only (Kamailio's TLS,
UDP and TCP ports, FreeSWITCH's TLS port, both FreeSWITCHes' RTP port ranges). The
capture proves: the SIP is TLS (application-data records; no `X-Pay-`, Call-ID,
`INVITE sip:`, `a=crypto` bytes), and the media are SRTP: every RTP packet of both
directions carries the 10-byte tag, which verifies with the key each side put in its
SDP (known to the test through the contact center's own channel variables); the
packets so decrypted hold the keyed digits as telephone-events and the very audio
each side played, while the same packets read as clear RTP hold neither.

FreeSWITCH is not packaged in Debian: skipped unless FREESWITCH_BIN (or `freeswitch`
on PATH) names one.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import shutil
import struct
import time
import wave
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from payivr.core.config import load_config
from payivr.core.result import SIGNED_RESULT_HEADERS
from payivr.core.signature import verify, verify_callback
from payivr.kamailio.runner import modules_dir
from payivr.stack.demo import DEMO_CVV, request_headers
from payivr.stack.layout import StackLayout
from payivr.stack.ports import free_port, free_udp_block
from payivr.stack.receiver import CallbackReceiver
from payivr.stack.rtp_pcap import EVENT_PT, PCMA_PT, decode_events
from tests.conftest import EXAMPLE_CONFIG
from tests.freeswitch.contact_center import (
    SRTP_SUITE,
    ContactCenter,
    contact_center,
    originate_command,
)
from tests.freeswitch.engine_marks import FREESWITCH, NEEDS_FREESWITCH
from tests.freeswitch.inbound import InboundSocket, parse_event
from tests.integration.tls.certs import CertAuthority
from tests.support.capture import loopback_capture
from tests.support.pci import find_card_data
from tests.support.srtp import (
    TAG_LEN,
    Captured,
    Rtp,
    SrtpReceiver,
    alaw_frames,
    captured_packets,
    parse_rtp,
    sdp_keys,
)

pytestmark = NEEDS_FREESWITCH
PAN = "4111111111111111"
RTP_BLOCK = 20  # RTP/RTCP ports per FreeSWITCH: one call needs two
CALL_BOUND_S = 90


@dataclass
class Ports:
    kamailio_tls: int
    freeswitch_tls: int
    freeswitch_sip: int
    ivr_rtp: tuple[int, int]
    caller_rtp: tuple[int, int]


def _rtp_range() -> tuple[int, int]:
    first = free_udp_block(RTP_BLOCK)
    return first, first + RTP_BLOCK - 2  # even bounds, as FreeSWITCH wants


def _base_config(root: Path) -> Path:
    """The example config, paths absolute, acme requiring SRTP."""
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["secrets_file"] = str((EXAMPLE_CONFIG.parent / data["secrets_file"]).resolve())
    data["services"]["esl"]["prompts_dir"] = str(
        (EXAMPLE_CONFIG.parent / data["services"]["esl"]["prompts_dir"]).resolve()
    )
    data["merchants"]["acme"]["require_srtp"] = True
    path = root / "base.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _node_cert_dir(ca: CertAuthority, directory: Path) -> Path:
    """FreeSWITCH's TLS directory: agent.pem (certificate, key), cafile.pem (the CA)."""
    issued = ca.issue("node.test", server_and_client=True)
    directory.mkdir(parents=True)
    (directory / "agent.pem").write_bytes(
        issued.certificate.read_bytes() + issued.private_key.read_bytes()
    )
    (directory / "agent.pem").chmod(0o600)
    shutil.copyfile(ca.path, directory / "cafile.pem")
    return directory


def _secure(ports: Ports, ca: CertAuthority, pki: Path) -> Callable[[StackLayout], None]:
    """The stack's config edit: Kamailio's mutual-TLS listener, the node over TLS
    (its profile verifying Kamailio), SRTP mandatory, this test's RTP ports."""
    kamailio = ca.issue("127.0.0.1", server_and_client=True)
    cert_dir = _node_cert_dir(ca, pki / "node")

    def configure(layout: StackLayout) -> None:
        data = yaml.safe_load(layout.config_path.read_text())
        services = data["services"]
        services["kamailio"]["tls"] = {
            "enabled": True,
            "host": "127.0.0.1",
            "port": ports.kamailio_tls,
            "certificate": str(kamailio.certificate),
            "private_key": str(kamailio.private_key),
            "ca_certificate": str(ca.path),
            "mutual": True,
        }
        services["freeswitch_nodes"] = [f"sip:127.0.0.1:{ports.freeswitch_tls};transport=tls"]
        services["freeswitch"] = {
            "srtp": "mandatory",
            "sip_port": ports.freeswitch_sip,
            "rtp_ports": list(ports.ivr_rtp),
            "tls": {"cert_dir": str(cert_dir), "verify_policy": "in"},
        }
        layout.config_path.write_text(yaml.safe_dump(data, sort_keys=False))

    return configure


def _caller_sound(path: Path) -> list[int]:
    """One second (50 packets) of two tones the caller plays in a loop: the audio
    the capture must not show in clear."""
    samples = [
        round(6000 * math.sin(2 * math.pi * 440 * n / 8000))
        + round(4000 * math.sin(2 * math.pi * 1130 * n / 8000))
        for n in range(8000)
    ]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return samples


def _prompt_frames(prompts_dir: Path) -> set[bytes]:
    """Every 20 ms PCMA frame payivr's English prompts are made of."""
    frames: set[bytes] = set()
    for path in (prompts_dir / "en").glob("*.wav"):
        with wave.open(str(path), "rb") as w:
            raw = w.readframes(w.getnframes())
        frames |= alaw_frames(struct.unpack(f"<{len(raw) // 2}h", raw))
    return frames


@dataclass
class CallOutcome:
    caller_hangup: dict[str, str]  # the contact center's CHANNEL_HANGUP_COMPLETE
    keyed: str
    prompts_keyed: list[str]
    took_s: float


def _place_and_key(
    cc: ContactCenter,
    ivr_events: InboundSocket,
    kamailio_tls_port: int,
    call_id: str,
    headers: dict[str, str],
    sound: Path,
) -> CallOutcome:
    """Originate the call, key each field when payivr's IVR prompts for it (seen on
    its event socket), and return once the contact center's channel has hung up."""
    today = date.today()
    keys = {
        "enter-card-number": PAN + "#",
        "enter-expiry": f"12{(today.year + 3) % 100:02d}",
        "enter-cvv": DEMO_CVV,
    }
    call_uuid = f"cc-{secrets.token_hex(8)}"
    caller_events = cc.api()
    caller_events.subscribe("CHANNEL_HANGUP_COMPLETE", read_timeout=0.2)
    api = cc.api()
    started = time.monotonic()
    try:
        reply = api.api(originate_command(call_uuid, call_id, kamailio_tls_port, headers, sound))
        assert reply.startswith("+OK"), f"originate: {reply.strip()}"
        keyed, prompts = "", []
        while time.monotonic() - started < CALL_BOUND_S:
            try:
                _head, body = caller_events.read()
            except TimeoutError:
                body = ""
            event = parse_event(body)
            if (event.get("Event-Name"), event.get("Unique-ID")) == (
                "CHANNEL_HANGUP_COMPLETE",
                call_uuid,
            ):
                return CallOutcome(event, keyed, prompts, time.monotonic() - started)
            try:
                _head, body = ivr_events.read()
            except TimeoutError:
                continue
            event = parse_event(body)
            if (event.get("Event-Name"), event.get("Application")) != (
                "CHANNEL_EXECUTE",
                "play_and_get_digits",
            ):
                continue
            prompt = Path(event.get("Application-Data", "").split(" ")[5]).stem
            if prompt in keys:
                time.sleep(0.5)  # into the prompt, as a caller keys
                for key in keys[prompt]:
                    # One key at a time, 100 ms each, 300 ms apart, as a person keys
                    # (sent as one string, FreeSWITCH sends them 20 ms apart).
                    sent = api.api(f"uuid_send_dtmf {call_uuid} {key}@100")
                    assert sent.startswith("+OK"), f"uuid_send_dtmf: {sent.strip()}"
                    time.sleep(0.3)
                keyed += keys[prompt]
                prompts.append(prompt)
        pytest.fail(f"the call did not end within {CALL_BOUND_S} s (keyed {prompts})")
    finally:
        api.close()
        caller_events.close()


def _media(packets: list[Captured], rtp: tuple[int, int]) -> tuple[list[Rtp], list[Captured]]:
    """The RTP packets sent from the `rtp` port range, and any other datagram from it."""
    sent, other = [], []
    for c in packets:
        if c.proto == 17 and rtp[0] <= c.src_port <= rtp[1] + 1:
            packet = parse_rtp(c.payload, c.src_port, c.dst_port)
            if packet is None:
                other.append(c)
            else:
                sent.append(packet)
    return sent, other


def _tcp_bytes(packets: list[Captured], port: int) -> bytes:
    return b"".join(c.payload for c in packets if c.proto == 6 and port in (c.src_port, c.dst_port))


def _redis_events(url: str) -> list[dict[str, Any]]:
    import redis

    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return [fields for _id, fields in client.xrange("payivr:events")]
    finally:
        client.close()


@pytest.mark.timeout(180)
def test_a_card_keyed_over_tls_and_srtp_is_approved_and_nothing_travels_in_clear(
    tmp_path: Path,
) -> None:
    from payivr.stack.up import stack_down, stack_up

    if not (Path(modules_dir()) / "tls.so").is_file():
        pytest.skip("Kamailio's tls module is needed (apt-get install kamailio-tls-modules)")
    assert FREESWITCH is not None
    ca = CertAuthority(tmp_path / "pki")
    ivr_rtp = _rtp_range()
    caller_rtp = _rtp_range()
    while caller_rtp[0] <= ivr_rtp[1] + 1 and ivr_rtp[0] <= caller_rtp[1] + 1:
        caller_rtp = _rtp_range()
    ports = Ports(free_port(), free_port(), free_port(), ivr_rtp, caller_rtp)
    receiver = CallbackReceiver().start()
    stack_dir = tmp_path / "stack"
    try:
        state = stack_up(
            _base_config(tmp_path),
            stack_dir,
            freeswitch=FREESWITCH,
            configure=_secure(ports, ca, tmp_path / "pki"),
        )
        config = load_config(Path(state.config))
        merchant = config.merchant("acme")
        assert merchant is not None and merchant.require_srtp
        es = config.services.esl.event_socket
        assert es.password is not None
        ivr_events = InboundSocket(es.port, es.password.value())
        ivr_events.subscribe("CHANNEL_EXECUTE", read_timeout=0.2)
        sound = tmp_path / "caller-sound.wav"
        caller_samples = _caller_sound(sound)
        call_id = f"tls-srtp-{secrets.token_hex(8)}@cti.test"
        headers = dict(request_headers(merchant, call_id, receiver.url, "en", 1250))
        kamailio_plain = state.ports["kamailio"]
        bpf = (
            f"tcp port {ports.kamailio_tls} or tcp port {ports.freeswitch_tls} "
            f"or port {kamailio_plain} "
            f"or udp portrange {ivr_rtp[0]}-{ivr_rtp[1] + 1} "
            f"or udp portrange {caller_rtp[0]}-{caller_rtp[1] + 1}"
        )
        pcap = tmp_path / "call.pcap"
        with (
            contact_center(FREESWITCH, tmp_path, ca, caller_rtp) as cc,
            loopback_capture(bpf, pcap) as capture,
        ):
            try:
                outcome = _place_and_key(
                    cc, ivr_events, ports.kamailio_tls, call_id, headers, sound
                )
            finally:
                ivr_events.close()
        callbacks = receiver.wait(1, 20)
        stream_events = _redis_events(config.services.redis.url)
    finally:
        receiver.stop()
        stack_down(stack_dir)

    # The payment: every field keyed once, approved, the result signed on the BYE.
    assert outcome.prompts_keyed == ["enter-card-number", "enter-expiry", "enter-cvv"]
    hangup = outcome.caller_hangup
    bye = {
        k.removeprefix("variable_sip_bye_h_").lower(): v
        for k, v in hangup.items()
        if k.startswith("variable_sip_bye_h_")
    }
    assert (bye.get("x-pay-result"), bye.get("x-pay-card")) == ("approved", "************1111")
    assert verify(
        merchant.signing_secret.encode(),
        {k: v for k, v in bye.items() if k in SIGNED_RESULT_HEADERS},
        call_id,
        bye["x-pay-signature"],
        SIGNED_RESULT_HEADERS,
    )
    assert callbacks, "no callback"
    assert verify_callback(
        merchant.callback_secret.encode(),
        callbacks[-1].body,
        callbacks[-1].headers.get("X-Payivr-Signature", ""),
    )
    assert json.loads(callbacks[-1].body)["result"] == "approved"

    # The media negotiated: SRTP, one suite, on both sides' SDP (the caller's view).
    local_sdp = hangup["variable_rtp_local_sdp_str"]
    remote_sdp = hangup["variable_switch_r_sdp"]
    for sdp in (local_sdp, remote_sdp):
        assert "RTP/SAVP" in sdp and re.search(rf"a=crypto:\d+ {SRTP_SUITE} inline:", sdp)
    sent_keys, received_keys = sdp_keys(local_sdp), sdp_keys(remote_sdp)

    # The signalling: TLS on both hops, nothing readable, nothing over plain SIP.
    assert capture.counts.get("dropped by kernel") == 0, capture.counts  # all of it
    packets = list(captured_packets(pcap))
    wire = pcap.read_bytes()
    for clear in (b"X-Pay-", b"X-Payivr-Session", b"INVITE sip:", b"SIP/2.0", b"a=crypto"):
        assert clear not in wire, f"{clear!r} travelled in clear"
    assert call_id.encode() not in wire and headers["X-Pay-Order"].encode() not in wire
    for port in (ports.kamailio_tls, ports.freeswitch_tls):
        stream = _tcp_bytes(packets, port)
        assert b"\x17\x03\x03" in stream and len(stream) > 3000, (port, len(stream))
    assert not [c for c in packets if kamailio_plain in (c.src_port, c.dst_port)]

    # The media: SRTP both ways. Every packet carries the tag and verifies with the
    # sender's key; the clear RTP a non-SRTP phone would send is nowhere.
    caller_sent, caller_other = _media(packets, caller_rtp)
    ivr_sent, ivr_other = _media(packets, ivr_rtp)
    assert len(caller_sent) > 500 and len(ivr_sent) > 500, (len(caller_sent), len(ivr_sent))
    # Besides RTP only FreeSWITCH's own port probes (4-5 bytes it sends to a port it
    # opens or closes, to itself): no RTCP, nothing else.
    others = caller_other + ivr_other
    assert all(c.src_port == c.dst_port and len(c.payload) <= 5 for c in others), others
    sizes = Counter((p.payload_type, len(p.body)) for p in caller_sent + ivr_sent)
    assert set(sizes) <= {(PCMA_PT, 160 + TAG_LEN), (EVENT_PT, 4 + TAG_LEN)}, sizes
    caller_clear = [c for c in map(SrtpReceiver(sent_keys).unprotect, caller_sent) if c]
    ivr_clear = [c for c in map(SrtpReceiver(received_keys).unprotect, ivr_sent) if c]
    assert (len(caller_clear), len(ivr_clear)) == (len(caller_sent), len(ivr_sent)), (
        "a media packet failed SRTP authentication"
    )

    # The card digits: decrypted, the caller's telephone-events are exactly the keys
    # pressed; read as clear RTP, the same packets are no digits at all.
    events = [p for p in caller_sent if p.payload_type == EVENT_PT]
    assert events and {len(p.body) for p in events} == {4 + TAG_LEN}
    decrypted = decode_events((p.payload_type, p.timestamp, p.body) for p in caller_clear)
    as_clear = decode_events((p.payload_type, p.timestamp, p.body) for p in events)
    keyed_ok = decrypted == outcome.keyed
    assert keyed_ok, f"decrypted events: {len(decrypted)} keys, {len(outcome.keyed)} keyed"
    assert not find_card_data(as_clear) and PAN[:6] not in as_clear
    assert sum(1 for p in events if p.body[0] <= 11) < len(events) / 4  # random bytes

    # The audio: decrypted, it is the sound each side played, frame for frame; the
    # bytes on the wire never are.
    caller_frames = alaw_frames(caller_samples)
    prompt_frames = _prompt_frames(config.services.esl.prompts_dir)
    caller_audio = [p.body for p in caller_clear if p.payload_type == PCMA_PT]
    ivr_audio = [p.body for p in ivr_clear if p.payload_type == PCMA_PT]
    assert sum(f in caller_frames for f in caller_audio) > 0.9 * len(caller_audio)
    assert sum(f in prompt_frames for f in ivr_audio) > 100
    known = caller_frames | prompt_frames
    assert not any(p.body[:160] in known for p in caller_sent + ivr_sent)

    # What payivr's side kept: no card number in any file of the stack (FreeSWITCH,
    # Kamailio, ESL, worker logs, Redis' AOF), in the events or in the callback.
    for path in stack_dir.rglob("*"):
        if path.is_file():
            found = find_card_data(path.read_text(errors="replace"))
            assert not found, f"{path.relative_to(stack_dir)}: {found}"
    assert stream_events and not find_card_data(json.dumps(stream_events))
    assert not find_card_data(callbacks[-1].body.decode())
    print(
        f"call {outcome.took_s:.1f} s; capture {len(packets)} packets, {len(wire)} bytes: "
        f"SIP/TLS {len(_tcp_bytes(packets, ports.kamailio_tls))} + "
        f"{len(_tcp_bytes(packets, ports.freeswitch_tls))} bytes, SRTP caller->IVR "
        f"{len(caller_sent)} ({len(events)} events), IVR->caller {len(ivr_sent)}, "
        f"self-probes {len(others)}; tcpdump {capture.counts}"
    )
