"""Bencode, the encoding of rtpengine's ng control protocol (dicts, lists, bytes, ints).

Only what the ng protocol carries: byte strings, integers, lists and dicts with
string keys. Dict keys are written sorted, as bencode requires.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Value = bytes | str | int | Sequence["Value"] | Mapping[str, "Value"]


class BencodeError(ValueError):
    """Malformed bencoded data."""


def encode(value: Value) -> bytes:
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _encode(value: Value, out: list[bytes]) -> None:
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, str):
        _encode(value.encode("utf-8"), out)
    elif isinstance(value, bytes):
        out.append(b"%d:" % len(value))
        out.append(value)
    elif isinstance(value, Mapping):
        out.append(b"d")
        for key in sorted(value):
            _encode(key, out)
            _encode(value[key], out)
        out.append(b"e")
    else:
        out.append(b"l")
        for item in value:
            _encode(item, out)
        out.append(b"e")


def decode(data: bytes) -> object:
    """Decode one value; byte strings come back as bytes, dict keys as str."""
    value, end = _decode(data, 0)
    if end != len(data):
        raise BencodeError(f"{len(data) - end} bytes after the value")
    return value


def _decode(data: bytes, at: int) -> tuple[object, int]:
    if at >= len(data):
        raise BencodeError("truncated")
    lead = data[at : at + 1]
    if lead == b"i":
        end = data.index(b"e", at)
        return int(data[at + 1 : end]), end + 1
    if lead == b"l":
        items: list[object] = []
        at += 1
        while data[at : at + 1] != b"e":
            item, at = _decode(data, at)
            items.append(item)
        return items, at + 1
    if lead == b"d":
        result: dict[str, object] = {}
        at += 1
        while data[at : at + 1] != b"e":
            key, at = _decode(data, at)
            if not isinstance(key, bytes):
                raise BencodeError("a dict key is not a string")
            result[key.decode("utf-8")], at = _decode(data, at)
        return result, at + 1
    if lead.isdigit():
        colon = data.index(b":", at)
        length = int(data[at:colon])
        start = colon + 1
        if start + length > len(data):
            raise BencodeError("truncated string")
        return data[start : start + length], start + length
    raise BencodeError(f"unexpected byte {lead!r} at {at}")
