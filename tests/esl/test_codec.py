"""The codec against every real FreeSWITCH capture, split at every kind of boundary."""

from __future__ import annotations

import random
import re

import pytest

from payivr.esl.codec import (
    HeaderMap,
    ProtocolError,
    StreamParser,
    encode_command,
    encode_sendmsg,
)
from tests.esl import transcripts

FILES = [f"{name}.txt" for name in transcripts.NAMES]


def _stream(name: str) -> tuple[bytes, int]:
    blocks = [raw for d, _, raw in transcripts.parse(transcripts.TRANSCRIPTS / name) if d == "<<<"]
    return b"".join(blocks), len(blocks)


@pytest.mark.parametrize("name", FILES)
def test_every_transcript_splits_into_its_messages(name: str) -> None:
    data, count = _stream(name)
    rng = random.Random(name)
    parser, messages, pos = StreamParser(), [], 0
    while pos < len(data):
        step = rng.choice((1, 7, 100, 4096, 70000))
        messages += parser.feed(data[pos : pos + step])
        pos += step
    assert len(messages) == count
    assert messages[0].headers["Reply-Text"] == "+OK\n"  # url-decoded connect reply
    assert messages[0].headers["Socket-Mode"] in ("async", "static")
    assert messages[0].headers["variable_sip_h_X-Pay-Merchant"] == "acme"
    # Every recorded call ends with FreeSWITCH's disconnect notice (after `exit`, the
    # linger time, or at once without linger).
    assert messages[-1].headers["Content-Disposition"] == "disconnect"
    assert any(m.event_name == "CHANNEL_HANGUP" for m in messages)


def test_channel_data_is_url_decoded() -> None:
    data, _ = _stream("connect_and_channel_data.txt")
    connect = StreamParser().feed(data)[0]
    # The caller (SIPp, From user "sipp") on payivr's SIP profile.
    assert connect.headers["Channel-Name"].startswith("sofia/payivr/sipp@127.0.0.1:")
    assert connect.headers["variable_sip_h_X-Payivr-Session"] == "s-test-123"
    assert connect.headers["Content-Type"] == "command/reply"


def test_dtmf_digits_never_become_text() -> None:
    data, _ = _stream("play_and_get_digits_ok.txt")
    dtmf = [m for m in StreamParser().feed(data) if m.event_name == "DTMF"]
    assert len(dtmf) == 17
    for message in dtmf:
        assert "DTMF-Digit" not in (message.event or {})
        assert list(message.secrets) == ["DTMF-Digit"]
        assert "DTMF" in repr(message) and "4" not in repr(message).replace("secrets=1", "")


def _reframe(data: bytes, old: bytes, new: bytes) -> bytes:
    """Rename a header inside events and fix their Content-Length."""
    parser, out = StreamParser(), b""
    raw_blocks = []
    pos = 0
    while pos < len(data):
        end = data.index(b"\n\n", pos)
        head = data[pos:end]
        m = re.search(rb"Content-Length: (\d+)", head)
        n = int(m.group(1)) if m else 0
        raw_blocks.append((head, data[end + 2 : end + 2 + n]))
        pos = end + 2 + n
    del parser
    for head, body in raw_blocks:
        body = body.replace(old, new)
        if b"Content-Length:" in head:
            head = re.sub(rb"Content-Length: \d+", f"Content-Length: {len(body)}".encode(), head)
        out += head + b"\n\n" + body
    return out


def test_collected_digits_go_straight_into_secret_digits() -> None:
    data, _ = _stream("play_and_get_digits_with_sensitive_dtmf.txt")
    data = _reframe(data, b"variable_pan:", b"variable_payivr_dtmf_x:")
    messages = StreamParser().feed(data)
    complete = [
        m
        for m in messages
        if m.event_name == "CHANNEL_EXECUTE_COMPLETE"
        and (m.event or {}).get("Application") == "play_and_get_digits"
    ]
    assert len(complete) == 1
    secret = complete[0].secrets["variable_payivr_dtmf_x"]
    assert len(secret) == 16 and secret.is_digits()
    for message in messages:
        text = repr(message) + repr(message.event) + repr(message.headers)
        assert "4111111111111111" not in text
    complete[0].wipe_secrets()
    assert secret.wiped


def test_a_value_mentioning_digits_keeps_the_event_lazy() -> None:
    """`play_and_get_digits` in a value (Application, current_application, on most
    events of a payment call) is no card-data header: the event is looked up in its
    block, not parsed into a table of its 150-250 headers (docs/esl.md, Benchmark)."""
    data, _ = _stream("play_and_get_digits_ok.txt")
    events = [m.event for m in StreamParser().feed(data) if m.event is not None]
    collections = [e for e in events if e.get("Application") == "play_and_get_digits"]
    assert collections
    for event in collections:
        assert isinstance(event, HeaderMap)
        # Its truth (`message.event or {}`) must not build the table either.
        assert event and event.prefixed("variable_")
        assert not event.prefixed("no_such_prefix_")
        assert event._raw is None  # no table built at parse time or by the checks


def _event(lines: list[str]) -> bytes:
    body = ("\n".join(lines) + "\n\n").encode()
    return f"Content-Length: {len(body)}\nContent-Type: text/event-plain\n\n".encode() + body


def test_card_data_lines_are_cut_out_wherever_they_are() -> None:
    data = _event(
        [
            "digits: 4111",
            "Event-Name: CHANNEL_EXECUTE_COMPLETE",
            "Application: play_and_get_digits",
            "variable_payivr_dtmf_pan: 4111111111111111",
            "variable_payivr_dtmf_pan: 5555555555554444",
            "variable_read_result: success",
            "variable_payivr_dtmf_cvv: 737",
        ]
    )
    message = StreamParser().feed(data)[0]
    event = message.event
    assert isinstance(event, HeaderMap)
    assert sorted(message.secrets) == [
        "digits",
        "variable_payivr_dtmf_cvv",
        "variable_payivr_dtmf_pan",
    ]
    # The first occurrence of a name wins, as for any header.
    assert message.secrets["variable_payivr_dtmf_pan"].is_digits()
    assert len(message.secrets["variable_payivr_dtmf_pan"]) == 16
    assert len(message.secrets["variable_payivr_dtmf_cvv"]) == 3
    assert dict(event) == {
        "Event-Name": "CHANNEL_EXECUTE_COMPLETE",
        "Application": "play_and_get_digits",
        "variable_read_result": "success",
    }
    assert event.prefixed("variable_").get("read_result") == "success"
    assert "variable_payivr_dtmf_pan" not in event and event.get("digits") is None
    message.wipe_secrets()


def test_api_response_body_is_kept_byte_for_byte() -> None:
    data, _ = _stream("deflect_api.txt")
    api = [m for m in StreamParser().feed(data) if m.content_type == "api/response"]
    assert api[0].body == b"+OK:SIP/2.0 200 OK\r\n\n"  # Content-Length 21


def test_garbage_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        StreamParser().feed(b"no colon here\n\n")
    for lines in (["Event-Name: X", "no colon", "A: b"], ["Event-Name: X", "A: b", "last"]):
        with pytest.raises(ProtocolError):
            StreamParser().feed(_event(lines))
    with pytest.raises(ProtocolError):
        StreamParser().feed(b"Content-Length: x\n\n")


def test_commands_cannot_smuggle_a_second_command() -> None:
    assert encode_command("linger 10") == b"linger 10\n\n"
    assert encode_sendmsg({"call-command": "execute", "execute-app-name": "answer"}) == (
        b"sendmsg\ncall-command: execute\nexecute-app-name: answer\n\n"
    )
    with pytest.raises(ValueError):
        encode_command("api status\n\nexit")
    with pytest.raises(ValueError):
        encode_sendmsg({"execute-app-arg": "a\nb"})
