"""The messages between the ESL process and its decoding workers (payivr.speech.pool,
payivr.speech.worker), over one AF_UNIX socket pair per worker: kernel memory only.

A message is a fixed header (kind, utterance id, an integer argument, the payload's
size) and the payload. Audio and digits travel as raw bytes read into buffers the
receiver zeroes; nothing here formats a payload into text.
"""

from __future__ import annotations

import enum
import socket
import struct

HEADER = struct.Struct("<BIII")  # kind, utterance id, argument, payload size
# Far above one listen's audio (8 s of L16 8 kHz is 128 kB): a larger size means a
# corrupt stream, and the connection is dropped rather than the memory taken.
MAX_PAYLOAD = 1 << 20


class Kind(enum.IntEnum):
    # worker -> ESL process
    READY = 1  # the decoders are loaded
    DECODED = 3  # an AUDIO block is decoded; argument: CPU microseconds spent
    MEAN = 4  # payload: the running cepstral mean after the utterance (13 numbers)
    RESULT = 5  # argument: CPU microseconds; payload: the digits (empty: nothing heard)
    FAILED = 6  # the utterance's decoding raised; it is gone (no text, by design)
    # ESL process -> worker
    OPEN = 10  # argument: digits wanted (0: yes/no); payload: language "\n" starting mean
    AUDIO = 11  # payload: L16 8 kHz to decode now
    FINISH = 12  # payload: the rest of the audio; answer MEAN (if any), then RESULT
    DISCARD = 13  # drop the utterance unread


class WireError(Exception):
    """The peer sent something that is not a message (the connection is dropped)."""


def message(
    kind: Kind, utterance: int, argument: int = 0, payload: bytes | bytearray = b""
) -> bytearray:
    """One message as a zeroable buffer (wipe it once sent when it carries audio)."""
    out = bytearray(HEADER.pack(kind, utterance, argument, len(payload)))
    out += payload
    return out


def parse_header(header: bytes | bytearray) -> tuple[Kind, int, int, int]:
    kind, utterance, argument, size = HEADER.unpack(header)
    if size > MAX_PAYLOAD:
        raise WireError("payload too large")
    try:
        return Kind(kind), utterance, argument, size
    except ValueError:
        raise WireError("unknown message kind") from None


def receive(sock: socket.socket) -> tuple[Kind, int, int, bytearray] | None:
    """The next message (blocking), or None when the peer has closed its end."""
    header = bytearray(HEADER.size)
    if not _fill(sock, header, at_start=True):
        return None
    kind, utterance, argument, size = parse_header(header)
    payload = bytearray(size)
    _fill(sock, payload, at_start=False)
    return kind, utterance, argument, payload


def _fill(sock: socket.socket, buffer: bytearray, *, at_start: bool) -> bool:
    view = memoryview(buffer)
    got = 0
    while got < len(buffer):
        n = sock.recv_into(view[got:])
        if n == 0:
            if got == 0 and at_start:
                return False
            raise WireError("connection closed mid-message")
        got += n
    return True
