"""requests/urllib3 plumbing that checks the address actually connected to.

The policy check before sending resolves the host; the connection resolves it again.
To make the check hold for the connection that carries the callback, the connection
classes below look at the connected socket's peer address before a byte (or a TLS
handshake) goes out, and refuse a peer the merchant's policy does not allow.
"""

from __future__ import annotations

import socket
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from payivr.callbacks.policy import NotAllowed, address_allowed


class PeerNotAllowed(NotAllowed):
    """The connection reached an address the policy does not allow (raised, not wrapped)."""


def _check_peer(sock: socket.socket, allow_private: bool) -> None:
    peer = str(sock.getpeername()[0])
    if not address_allowed(peer, allow_private):
        sock.close()
        raise PeerNotAllowed("address-not-allowed", f"connected to {peer}")


class _OneWrite:
    """Sends the request head and a small body in one write.

    urllib3 writes them separately: two system calls per callback, and two TCP
    segments where one does. With thousands of callbacks a second that is worth a few
    lines; the body still goes out exactly as given, with its Content-Length.
    """

    _pending_body: bytes | None = None
    _glue: bytes | None = None

    def request(
        self, method: str, url: str, body: Any = None, headers: Any = None, **kwargs: Any
    ) -> None:
        if (
            isinstance(body, bytes)
            and len(body) <= 65536
            and headers is not None
            and "Content-Length" in headers
        ):
            self._pending_body, body = body, None
        try:
            super().request(method, url, body=body, headers=headers, **kwargs)  # type: ignore[misc]
        finally:
            self._pending_body = None

    def endheaders(self, message_body: Any = None, *, encode_chunked: bool = False) -> None:
        body, self._pending_body = self._pending_body, None
        if body is None:
            super().endheaders(message_body, encode_chunked=encode_chunked)  # type: ignore[misc]
            return
        # http.client writes the head with one send(); glue the body to it.
        self._glue = body
        try:
            super().endheaders(None, encode_chunked=encode_chunked)  # type: ignore[misc]
        finally:
            self._glue = None

    def send(self, data: Any) -> None:
        glue, self._glue = self._glue, None
        if glue is not None:
            data = bytes(data) + glue
        super().send(data)  # type: ignore[misc]


class _StrictHTTPConnection(_OneWrite, HTTPConnection):
    allow_private = False

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_peer(sock, self.allow_private)
        return sock


class _StrictHTTPSConnection(_OneWrite, HTTPSConnection):
    allow_private = False

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_peer(sock, self.allow_private)
        return sock


class _PrivateHTTPConnection(_StrictHTTPConnection):
    allow_private = True


class _PrivateHTTPSConnection(_StrictHTTPSConnection):
    allow_private = True


def _pools(allow_private: bool) -> dict[str, type[HTTPConnectionPool]]:
    http_conn = _PrivateHTTPConnection if allow_private else _StrictHTTPConnection
    https_conn = _PrivateHTTPSConnection if allow_private else _StrictHTTPSConnection
    http_pool = type("PayivrHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn})
    https_pool = type("PayivrHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})
    return {"http": http_pool, "https": https_pool}


class GuardedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections check their peer address (see module doc)."""

    def __init__(self, allow_private: bool, pool_maxsize: int = 10) -> None:
        self._allow_private = allow_private
        super().__init__(pool_connections=64, pool_maxsize=pool_maxsize, max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pools(self._allow_private)


def guarded_session(allow_private: bool, pool_maxsize: int = 10) -> requests.Session:
    """A Session with connection reuse, TLS verification, no proxies from the environment."""
    session = requests.Session()
    # Environment proxies would make the peer check see the proxy, and a proxy set by
    # accident would carry callbacks elsewhere; egress goes direct.
    session.trust_env = False
    session.verify = True
    adapter = GuardedAdapter(allow_private, pool_maxsize)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
