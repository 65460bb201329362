"""The tests' SRTP reader (tests/support/srtp.py) against RFC 3711's test vectors."""

from __future__ import annotations

import struct

from tests.support.srtp import (
    Rtp,
    SrtpKeys,
    SrtpReceiver,
    _keystream,
    linear_to_alaw,
    parse_rtp,
    sdp_keys,
)


def test_key_derivation_matches_rfc_3711_appendix_b3() -> None:
    keys = SrtpKeys.derive(
        bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE4139"),
        bytes.fromhex("0EC675AD498AFEEBB6960B3AABE6"),
    )
    assert keys.cipher_key.hex().upper() == "C61E7A93744F39EE10734AFE3FF7A087"
    assert keys.cipher_salt.hex().upper() == "30CBBC08863D8C85D49DB34A9AE1"
    assert keys.auth_key.hex().upper() == "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"


def test_counter_mode_keystream_matches_rfc_3711_appendix_b2() -> None:
    salt = int.from_bytes(bytes.fromhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"), "big")
    stream = _keystream(bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C"), salt << 16, 32)
    assert stream.hex().upper() == (
        "E03EAD0935C95E80E166B16DD92B4EB4D23513162B02D0F72A43A2FE4A5F97AB"
    )


def test_a_protected_packet_is_unprotected_and_a_clear_or_tampered_one_is_not() -> None:
    inline = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"  # RFC 4568's example key
    sdp = "m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"
    keys = sdp_keys(f"{sdp}{inline}|2^20|1:4\r\n")
    header = struct.pack("!BBHII", 0x80, 101, 65535, 160, 0x1234)
    event = bytes([4, 0x8A, 0x03, 0x20])  # digit 4, end, duration 800
    wire = keys.protect(header, event)
    assert len(wire) == 12 + 4 + 10
    packet = parse_rtp(wire)
    assert packet is not None and packet.body[:4] != event
    receiver = SrtpReceiver(keys)
    clear = receiver.unprotect(packet)
    assert clear is not None and clear.body == event
    # the next packet's sequence number wraps: the rollover counter follows
    wrapped = parse_rtp(keys.protect(struct.pack("!BBHII", 0x80, 101, 0, 160, 0x1234), event, 1))
    assert wrapped is not None and receiver.unprotect(wrapped) is not None
    # a clear RTP packet, or one with a flipped bit, never passes
    assert (
        SrtpReceiver(keys).unprotect(Rtp(0, 0, 101, False, 65535, 160, 0x1234, header, event))
        is None
    )
    tampered = parse_rtp(wire[:13] + bytes([wire[13] ^ 1]) + wire[14:])
    assert tampered is not None and SrtpReceiver(keys).unprotect(tampered) is None


def test_alaw_encoder_is_freeswitchs() -> None:
    # g711.h: zero codes as 0xD5, -1..-8 as the step below zero (0x55), the extremes.
    assert [linear_to_alaw(x) for x in (0, 1, -1, -8, 32767, -32768)] == [
        0xD5, 0xD5, 0x55, 0x55, 0xAA, 0x2A,
    ]  # fmt: skip
