"""A small client of FreeSWITCH's inbound event socket, for the real-FreeSWITCH tests.

It plays the part of "another event consumer" and of an operator with fs_cli: it
collects every event of a call (`event plain ALL`) and polls `uuid_dump`, so the
tests can check what FreeSWITCH itself exposes about the keyed digits. What it
receives stays in memory (never written to disk).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote


def read_message(sock: socket.socket, buf: bytes) -> tuple[str, bytes, bytes]:
    """One event-socket message (inbound or outbound) from what `buf` holds and then
    `sock`: (headers, body, the bytes after it)."""
    while b"\n\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("event socket closed")
        buf += chunk
    raw_head, _, buf = buf.partition(b"\n\n")
    head = raw_head.decode("utf-8", "replace")
    length = 0
    for line in head.splitlines():
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    while len(buf) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("event socket closed")
        buf += chunk
    return head, buf[:length], buf[length:]


class InboundSocket:
    """One authenticated inbound connection (blocking, for a test thread)."""

    def __init__(self, port: int, password: str, timeout: float = 5.0) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buf = b""
        head, _ = self.read()
        if "auth/request" not in head:
            raise RuntimeError("no auth/request from the event socket")
        self._sock.sendall(f"auth {password}\n\n".encode())
        head, _ = self.read()
        if "+OK" not in head:
            raise RuntimeError("event socket refused the password")

    def read(self) -> tuple[str, str]:
        """One message: (headers, body)."""
        head, body, self._buf = read_message(self._sock, self._buf)
        return head, body.decode("utf-8", "replace")

    def subscribe(self, events: str, read_timeout: float | None = None) -> None:
        """`event plain <events>`; later reads wait up to `read_timeout` (None: as opened)."""
        self._sock.sendall(f"event plain {events}\n\n".encode())
        self.read()  # +OK Event Listener enabled
        if read_timeout is not None:
            self._sock.settimeout(read_timeout)

    def api(self, command: str) -> str:
        self._sock.sendall(f"api {command}\n\n".encode())
        while True:
            head, body = self.read()
            if "api/response" in head:
                return body

    def close(self) -> None:
        self._sock.close()


def parse_event(body: str) -> dict[str, str]:
    """A `text/event-plain` body (url-encoded values) as a dict."""
    event: dict[str, str] = {}
    for line in body.split("\n"):
        name, sep, value = line.partition(": ")
        if sep:
            event[name] = unquote(value)
    return event


@dataclass
class Watch:
    """Events and channel dumps seen while a test call ran."""

    events: list[dict[str, str]] = field(default_factory=list)
    dumps: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class CallWatcher:
    """Every event FreeSWITCH fires (ALL), and `uuid_dump` of each new channel every
    `every_s` seconds until it is gone, on two inbound connections."""

    def __init__(self, port: int, password: str, every_s: float = 0.1) -> None:
        self.watch = Watch()
        self._port, self._password, self._every = port, password, every_s
        self._stop = threading.Event()
        self._events = InboundSocket(port, password)
        self._events.subscribe("ALL", read_timeout=0.2)
        self._threads = [
            threading.Thread(target=self._collect, daemon=True),
            threading.Thread(target=self._dump, daemon=True),
        ]

    def __enter__(self) -> CallWatcher:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self._events.close()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                head, body = self._events.read()
            except TimeoutError:
                continue
            except (ConnectionError, OSError) as exc:
                self.watch.errors.append(type(exc).__name__)
                return
            if "text/event-plain" in head:
                self.watch.events.append(parse_event(body))

    def _uuids(self) -> set[str]:
        return {
            e["Unique-ID"]
            for e in list(self.watch.events)
            if e.get("Event-Name") == "CHANNEL_CREATE" and "Unique-ID" in e
        }

    def _dump(self) -> None:
        api = InboundSocket(self._port, self._password)
        try:
            while not self._stop.is_set():
                for uuid in self._uuids():
                    body = api.api(f"uuid_dump {uuid}")
                    if not body.startswith("-ERR"):
                        self.watch.dumps.append(parse_event(body))
                time.sleep(self._every)
        finally:
            api.close()
