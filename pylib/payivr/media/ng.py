"""A client for rtpengine's ng control protocol (bencoded dicts over UDP).

Each request is `<cookie> <bencoded dict>` in one datagram; rtpengine answers
`<cookie> <bencoded dict>` with `result: ok` (or `pong` to a ping), or `error` and an
`error-reason`. Requests are retried with the same cookie: rtpengine answers a
retransmission from its cookie cache instead of running the command twice.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping

from payivr.media import bencode

DEFAULT_TIMEOUT_S = 1.0
DEFAULT_TRIES = 3


class NgError(Exception):
    """rtpengine refused the command, or did not answer."""


class _Reply(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[bytes, asyncio.Future[bytes]] = {}

    def datagram_received(self, data: bytes, addr: object) -> None:
        cookie, _, body = data.partition(b" ")
        future = self.waiting.pop(cookie, None)
        if future is not None and not future.done():
            future.set_result(body)


class NgClient:
    """One rtpengine control socket. `await request("ping")` and friends."""

    def __init__(
        self,
        host: str,
        port: int,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        tries: int = DEFAULT_TRIES,
    ) -> None:
        self.address = (host, port)
        self.timeout_s = timeout_s
        self.tries = tries
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _Reply | None = None

    async def request(self, command: str, **params: bencode.Value) -> dict[str, object]:
        """Send one command; its answer as a dict. NgError if refused or unanswered."""
        transport, protocol = await self._open()
        cookie = secrets.token_hex(8).encode()
        message = bencode.encode({"command": command, **params})
        loop = asyncio.get_running_loop()
        for _ in range(self.tries):
            future: asyncio.Future[bytes] = loop.create_future()
            protocol.waiting[cookie] = future
            transport.sendto(cookie + b" " + message)
            try:
                body = await asyncio.wait_for(future, self.timeout_s)
            except TimeoutError:
                continue
            finally:
                protocol.waiting.pop(cookie, None)
            return _checked(command, body)
        raise NgError(f"{command}: no answer from rtpengine at {self.address[0]}:{self.address[1]}")

    async def _open(self) -> tuple[asyncio.DatagramTransport, _Reply]:
        if self._transport is None or self._protocol is None or self._transport.is_closing():
            loop = asyncio.get_running_loop()
            self._transport, self._protocol = await loop.create_datagram_endpoint(
                _Reply, remote_addr=self.address
            )
        return self._transport, self._protocol

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


def _checked(command: str, body: bytes) -> dict[str, object]:
    try:
        answer = bencode.decode(body)
    except (bencode.BencodeError, ValueError) as exc:
        raise NgError(f"{command}: unreadable answer ({exc})") from None
    if not isinstance(answer, Mapping):
        raise NgError(f"{command}: the answer is not a dict")
    result = answer.get("result")
    if result in (b"ok", b"pong"):
        return dict(answer)
    reason = answer.get("error-reason", b"")
    text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    raise NgError(f"{command}: {text or 'refused'}")
