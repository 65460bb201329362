"""The pure parts of the Kamailio glue: generated files and SIP message helpers."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from payivr.core.errors import bad_request, unavailable
from payivr.kamailio.runner import KamailioProcess, env_references
from payivr.kamailio.settings import (
    KamailioSettings,
    Socket,
    render_dispatcher_list,
    render_local_cfg,
    render_tls_cfg,
)
from payivr.kamailio.sipmsg import (
    payment_headers,
    reply_headers,
    unknown_payment_headers,
)

INVITE = (
    "INVITE sip:pay@10.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK1\r\n"
    "x-pay-merchant:acme\r\n"
    "X-Pay-Amount :  1250 \r\n"
    "X-Pay-Amount: 999\r\n"
    "X-Pay-Colour: blue\r\n"
    "X-Payivr-Session: forged\r\n"
    "Content-Length: 30\r\n\r\n"
    "X-Pay-Order: from-the-body\r\n"
)


def settings(**kw: object) -> KamailioSettings:
    base = KamailioSettings(
        config_path=Path("/etc/payivr/payivr.yaml"),
        kemi_script=Path("/k/payivr_kemi.py"),
        runtime_dir=Path("/run/payivr"),
        advertise_host="sbc.example.com",
        listen=(Socket("udp", "10.0.0.1", 5060), Socket("tcp", "10.0.0.1", 5060)),
        freeswitch_nodes=("sip:10.0.0.5:5080", "sip:10.0.0.6:5080"),
        pike_density=50,
    )
    return base.__class__(**{**base.__dict__, **kw})  # type: ignore[arg-type]


def test_payment_headers_keeps_duplicates_and_ignores_the_body() -> None:
    assert payment_headers(INVITE) == [
        ("x-pay-merchant", "acme"),
        ("X-Pay-Amount", "1250"),
        ("X-Pay-Amount", "999"),
        ("X-Pay-Colour", "blue"),
    ]


def test_unknown_payment_headers_are_named_for_removal() -> None:
    assert unknown_payment_headers(payment_headers(INVITE)) == {"X-Pay-Colour"}


def test_reply_headers_carry_warning_and_retry_after() -> None:
    assert reply_headers(bad_request("X-Pay-Amount", 'not "12.50"'), "h") == (
        'Warning: 399 h "X-Pay-Amount: not \\"12.50\\""\r\n'
    )
    assert reply_headers(unavailable("Redis", "down", 5), "h").endswith("Retry-After: 5\r\n")
    masked = reply_headers(bad_request("X-Pay-Merchant", "4111111111111111 unknown"), "h")
    assert "4111111111111111" not in masked and "X-Pay-Merchant: " in masked


def test_local_cfg_has_defines_listen_and_port_specific_aliases() -> None:
    text = render_local_cfg(settings())
    assert '#!define PAYIVR_CONFIG "/etc/payivr/payivr.yaml"' in text
    assert "#!define PAYIVR_PIKE_DENSITY 50" in text
    assert "listen=udp:10.0.0.1:5060\nlisten=tcp:10.0.0.1:5060\n" in text
    assert "alias=sbc.example.com:5060\n" in text
    assert "PAYIVR_WITH_TLS" not in text


def test_tls_listener_switches_tls_on() -> None:
    s = settings(
        listen=(Socket("tls", "10.0.0.1", 5061),),
        tls_certificate="/c.pem",
        tls_private_key="/k.pem",
    )
    text = render_local_cfg(s)
    assert "#!define PAYIVR_WITH_TLS\n" in text and "listen=tls:10.0.0.1:5061" in text
    assert "certificate = /c.pem" in render_tls_cfg(s)
    with pytest.raises(ValueError):
        render_tls_cfg(settings(listen=(Socket("tls", "10.0.0.1", 5061),)))


def test_dispatcher_list_keeps_config_order_as_priority() -> None:
    lines = render_dispatcher_list(settings()).splitlines()[1:]
    assert lines == ["1 sip:10.0.0.5:5080 0 2 node=0", "1 sip:10.0.0.6:5080 0 1 node=1"]


def test_a_quote_cannot_break_out_of_a_define() -> None:
    with pytest.raises(ValueError):
        render_local_cfg(settings(config_path=Path('/tmp/x"\n#!define EVIL')))


def test_socket_parse() -> None:
    assert str(Socket.parse("udp", "[::1]:5060")) == "udp:[::1]:5060"
    with pytest.raises(ValueError):
        Socket.parse("udp", "127.0.0.1")


def test_env_references_finds_every_env_secret() -> None:
    raw = {"a": "env:ONE", "b": [{"c": "env:TWO"}, "file:x"], "d": 3}
    assert env_references(raw) == {"ONE", "TWO"}


def test_message_body_reads_the_offer_and_its_content_type() -> None:
    from payivr.kamailio.sipmsg import message_body

    head = "INVITE sip:pay@h SIP/2.0\r\nCall-ID: 1@h\r\n"
    sdp = "v=0\r\nm=audio 4000 RTP/AVP 0\r\n"
    full = message_body(f"{head}c: application/sdp\r\nContent-Length: 25\r\n\r\n{sdp}")
    assert (full.content_type, full.text) == ("application/sdp", sdp)
    late = message_body(f"{head}Content-Length: 0\r\n\r\n")
    assert (late.content_type, late.text) == ("", "")


def test_kamailio_is_started_with_the_tlsf_allocator_for_shared_and_private_memory(
    tmp_path: Path,
) -> None:
    """Debian's default allocator cost 25-40% of Kamailio's CPU (docs/kamailio.md)."""
    from payivr.core.config import load_config
    from tests.conftest import EXAMPLE_CONFIG

    command = KamailioProcess(settings(runtime_dir=tmp_path), load_config(EXAMPLE_CONFIG)).command()
    pairs = list(itertools.pairwise(command))
    assert ("-x", "tlsf") in pairs
    assert ("-X", "tlsf") in pairs
