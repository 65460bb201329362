"""The event-socket wire format, without I/O: split FreeSWITCH's byte stream into
messages and encode the application's commands.

Rules taken from real FreeSWITCH 1.10 captures (../shared/freeswitch/transcripts):

* A message is `Name: value` header lines up to a blank line, then `Content-Length`
  bytes of body when that header is present. The `connect` reply is a
  `command/reply` with *no* Content-Length whose headers are the whole channel data,
  url-encoded, with `Content-Type`, `Reply-Text`, `Socket-Mode` and `Control` last.
* `text/event-plain` bodies are url-encoded `Name: value` lines ending with a blank
  line (counted in Content-Length); an event may carry its own body after that.
* `api/response` bodies are kept byte for byte (`+OK:SIP/2.0 200 OK\\r\\n`).

Card safety lives here, at the lowest layer: a header that can hold keyed digits (a
channel variable whose name starts with the collection prefix, its `_invalid` twin,
or `DTMF-Digit`) never becomes a `str`. Its value goes straight from the received
bytes into a `SecretDigits`, so no event dict, repr, log record or exception text can
ever show it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from payivr.core.secrets import SecretDigits

# Channel variables the driver names for its digit collections start with this; the
# codec treats every variable with this prefix as card data.
SECRET_VARIABLE_PREFIX = "payivr_dtmf_"  # noqa: S105 (a name prefix, not a secret)
_SECRET_HEADER_PREFIX = ("variable_" + SECRET_VARIABLE_PREFIX).encode()
# DTMF-Digit: FreeSWITCH's per-key DTMF event. digits and variable_last_matching_digits:
# what a digit action (bind_digit_action, payivr.agent.keys) matched, in its event
# and left on the channel.
_SECRET_HEADERS = frozenset({b"DTMF-Digit", b"digits", b"variable_last_matching_digits"})

# A header block larger than this is a peer gone wrong, not a FreeSWITCH event (a
# CHANNEL_HANGUP_COMPLETE with every variable is 9-12 KB).
MAX_HEADER_BYTES = 1 << 20
MAX_BODY_BYTES = 8 << 20


class ProtocolError(Exception):
    """The peer sent something that is not the event-socket protocol."""


@dataclass
class Message:
    """One message from FreeSWITCH: outer headers, decoded event headers, body.

    `headers` are the outer headers (for the connect reply: the whole channel data,
    url-decoded). For `text/event-plain`, `event` holds the event's own headers
    (url-decoded) and `body` any body that follows them. `secrets` holds the values
    of card-data headers, never present in `headers`/`event`.
    """

    headers: Mapping[str, str]
    body: bytes = b""
    event: Mapping[str, str] | None = None
    secrets: dict[str, SecretDigits] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def event_name(self) -> str:
        return self.event.get("Event-Name", "") if self.event is not None else ""

    def wipe_secrets(self) -> None:
        """Zero every card-data value this message carried."""
        for value in self.secrets.values():
            value.wipe()
        self.secrets.clear()

    def __repr__(self) -> str:
        # Never print headers: events carry channel variables (SPEC 10: never log them).
        kind = self.event_name or self.content_type
        return f"<Message {kind} headers={len(self.headers)} secrets={len(self.secrets)}>"


def _unquote_bytes(raw: bytes) -> bytearray:
    """Percent-decode into a bytearray without creating an intermediate str."""
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x25 and i + 2 < n and _is_hex(raw[i + 1]) and _is_hex(raw[i + 2]):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(c)
            i += 1
    return out


def _is_hex(c: int) -> bool:
    return 0x30 <= c <= 0x39 or 0x41 <= c <= 0x46 or 0x61 <= c <= 0x66


# How a line that may carry card data starts: the prefix, or an exact name and its colon.
# A name starts its line, so only a match at the block's start or after a newline
# counts: a value that merely contains `digits` (`Application: play_and_get_digits`,
# on most events of a payment call) is no card data.
_SECRET_LINE_STARTS = (_SECRET_HEADER_PREFIX, *(name + b":" for name in _SECRET_HEADERS))
_SECRET_LINE_STARTS_INSIDE = tuple(b"\n" + start for start in _SECRET_LINE_STARTS)


def _secret_line_offsets(block: bytes) -> list[int]:
    """Where the block's card-data lines start, in order (usually none: C searches only)."""
    offsets = [0] if block.startswith(_SECRET_LINE_STARTS) else []
    for start in _SECRET_LINE_STARTS_INSIDE:
        found = block.find(start)
        while found >= 0:
            offsets.append(found + 1)
            found = block.find(start, found + 1)
    return sorted(offsets)


def _take_secret_lines(
    block: bytes, offsets: list[int], secrets: dict[str, SecretDigits] | None
) -> bytes:
    """The block without the lines at `offsets`; their values go to `secrets` (the
    first occurrence of a name wins) as SecretDigits, never as `str`."""
    kept: list[bytes] = []
    position = 0
    for offset in offsets:
        end = block.find(b"\n", offset)
        end = len(block) if end < 0 else end
        kept.append(block[position:offset])
        position = end + 1
        line = _LINE.match(block, offset, end)
        if line is None or secrets is None:
            continue
        name = line.group(1).decode("ascii", "replace")
        if name in secrets:
            continue
        # A bytearray copy, then the SecretDigits copy; the scratch is zeroed.
        scratch = _unquote_bytes(line.group(2))
        secrets[name] = SecretDigits(scratch)
        for i in range(len(scratch)):
            scratch[i] = 0
    kept.append(block[position:])
    return b"".join(kept)


# One header line: name, colon, optional space, value. Matched in C over the whole
# block: events carry 150-250 headers and this runs for every one of them.
_LINE = re.compile(rb"^([^:\n]+): ?([^\n]*)$", re.MULTILINE)
# Every byte but the colon and the newline: deleted, they leave a block's skeleton in
# which a line without a colon shows as two newlines in a row (one C pass; a Python
# check per line or a regex cost 5-10 times as much for an event's 150-250 lines).
_NOT_COLON_OR_NEWLINE = bytes(b for b in range(256) if b not in b":\n")


class HeaderMap(Mapping[str, str]):
    """Headers as received; values are url-decoded only when read (most never are).

    Built either from a parsed table or, lazily, from the header block itself: an
    event carries 150-250 headers of which the application reads a handful, so a
    lookup searches the block for its line and the table is only built when someone
    iterates (docs/esl.md, Benchmark: parsing every header was a third of the
    application's CPU). A block's card-data lines are cut out at parse time
    (parse_header_lines), before any lookup can see them.

    Its repr shows how many headers there are, never a value: an event's channel
    variables must not reach a log line by accident.
    """

    __slots__ = ("_block", "_decode", "_prefix", "_raw")

    def __init__(
        self,
        raw: dict[bytes, bytes] | None,
        *,
        decode: bool,
        prefix: bytes = b"",
        block: bytes = b"",
    ) -> None:
        # Names stay bytes: decoding 200 names per event costs more than the few
        # lookups the application makes.
        self._raw = raw
        self._block = block
        self._decode = decode
        self._prefix = prefix

    def _table(self) -> dict[bytes, bytes]:
        if self._raw is None:
            pairs = _LINE.findall(self._block)
            pairs.reverse()  # so that dict() keeps the first occurrence of a name
            self._raw = dict(pairs)
        return self._raw

    def _value(self, name: bytes) -> bytes | None:
        if self._raw is not None:
            return self._raw.get(name)
        # The first line that starts with `name:` (the first occurrence wins).
        block = self._block
        if block.startswith(name + b":"):
            start = len(name) + 1
        else:
            found = block.find(b"\n" + name + b":")
            if found < 0:
                return None
            start = found + len(name) + 2
        if block[start : start + 1] == b" ":
            start += 1
        end = block.find(b"\n", start)
        return block[start:] if end < 0 else block[start:end]

    def __getitem__(self, key: str) -> str:
        value = self._value(self._prefix + key.encode())
        if value is None:
            raise KeyError(key)
        if self._decode and b"%" in value:
            return unquote(value.decode("utf-8", "replace"))
        return value.decode("utf-8", "replace")

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        try:
            return self[key]
        except KeyError:
            return default

    def _names(self) -> Iterator[bytes]:
        n = len(self._prefix)
        return (k[n:] for k in self._table() if k.startswith(self._prefix))

    def __iter__(self) -> Iterator[str]:
        return (k.decode("utf-8", "replace") for k in self._names())

    def __len__(self) -> int:
        return sum(1 for _ in self._names()) if self._prefix else len(self._table())

    def __bool__(self) -> bool:
        # Without this, truth would be len(): `event or {}` on every event built the
        # table of its 150-250 headers that the lazy lookups exist to avoid.
        if self._prefix:
            return any(True for _ in self._names())
        if self._raw is not None:
            return bool(self._raw)
        return _LINE.search(self._block) is not None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._value(self._prefix + key.encode()) is not None

    def prefixed(self, prefix: str) -> HeaderMap:
        """A view of the headers whose name starts with `prefix`, prefix removed."""
        view = HeaderMap(
            self._raw, decode=self._decode, prefix=self._prefix + prefix.encode(), block=self._block
        )
        return view

    def __repr__(self) -> str:
        return f"<HeaderMap {len(self)} headers>"


def parse_header_lines(
    block: bytes, *, decode: bool, secrets: dict[str, SecretDigits] | None = None
) -> HeaderMap:
    """Parse `Name: value` lines. Card-data headers go to `secrets`, never to the map.

    The first occurrence of a name wins (FreeSWITCH writes each header once anyway).
    """
    if not block:
        return HeaderMap({}, decode=decode)
    # Every line has its colon (this runs for every event).
    if b"\n\n" in b"\n" + block.translate(None, _NOT_COLON_OR_NEWLINE) + b"\n":
        raise ProtocolError("header line without a colon")
    # Lines whose name may carry card data are cut out first; what is left is
    # looked up lazily like any other block.
    offsets = _secret_line_offsets(block)
    if offsets:
        block = _take_secret_lines(block, offsets, secrets)
    return HeaderMap(None, decode=decode, block=block)


class StreamParser:
    """Incremental parser: feed() bytes as they arrive, get whole Messages back."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending: Mapping[str, str] | None = None
        self._pending_len = 0
        self._pending_secrets: dict[str, SecretDigits] = {}
        self._pending_decoded = False

    def feed(self, data: bytes) -> list[Message]:
        self._buf += data
        out: list[Message] = []
        while True:
            message = self._next()
            if message is None:
                break
            out.append(message)
        return out

    def _next(self) -> Message | None:
        if self._pending is None:
            end = self._buf.find(b"\n\n")
            if end < 0:
                if len(self._buf) > MAX_HEADER_BYTES:
                    raise ProtocolError("header block too large")
                return None
            block = bytes(self._buf[:end])
            del self._buf[: end + 2]
            # Only the connect reply carries channel data in its outer headers, and
            # only it is url-encoded there; it is recognised by `Event-Name` leading.
            decoded = block.startswith(b"Event-Name:")
            secrets: dict[str, SecretDigits] = {}
            headers = parse_header_lines(block, decode=decoded, secrets=secrets)
            length_text = headers.get("Content-Length")
            if length_text is None:
                return Message(headers=headers, secrets=secrets)
            try:
                length = int(length_text)
            except ValueError as exc:
                raise ProtocolError("Content-Length is not a number") from exc
            if length < 0 or length > MAX_BODY_BYTES:
                raise ProtocolError("Content-Length out of range")
            self._pending, self._pending_len = headers, length
            self._pending_secrets = secrets
        if len(self._buf) < self._pending_len:
            return None
        body = bytes(self._buf[: self._pending_len])
        del self._buf[: self._pending_len]
        pending, secrets = self._pending, self._pending_secrets
        self._pending, self._pending_secrets = None, {}
        message = Message(headers=pending, body=body, secrets=secrets)
        if pending.get("Content-Type") == "text/event-plain":
            _decode_event(message)
        return message


def _decode_event(message: Message) -> None:
    block, sep, rest = message.body.partition(b"\n\n")
    message.event = parse_header_lines(block, decode=True, secrets=message.secrets)
    inner = message.event.get("Content-Length")
    if sep and inner is not None and inner.isdigit():
        message.body = rest[: int(inner)]
    else:
        message.body = b""


def _check_line(value: str) -> str:
    # A newline inside a command would let one value inject a second command.
    if "\n" in value or "\r" in value:
        raise ValueError("event-socket command values cannot contain line breaks")
    return value


def encode_command(command: str) -> bytes:
    """A plain command (`myevents`, `linger 10`, `api ...`, `exit`)."""
    return (_check_line(command) + "\n\n").encode()


def encode_sendmsg(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> bytes:
    """`sendmsg` with its headers, e.g. call-command/execute-app-name/execute-app-arg."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    lines = ["sendmsg"]
    lines += [f"{_check_line(name)}: {_check_line(value)}" for name, value in items]
    return ("\n".join(lines) + "\n\n").encode()
