"""One delivery attempt of one outbox entry: checks, signature, POST, verdict."""

from __future__ import annotations

import functools
import socket
import threading
import time
from urllib.parse import urlsplit

import requests
from requests.structures import CaseInsensitiveDict

from payivr.callbacks.outbox_worker import DeliveryVerdict
from payivr.callbacks.policy import CallbackPolicy, NotAllowed, check_resolved, check_url
from payivr.callbacks.transport import guarded_session
from payivr.core.signature import sign_callback
from payivr.store.outbox import LeasedEntry

USER_AGENT = "payivr-callbacks/1"
MAX_RESPONSE_BYTES = 64 * 1024
# How long a host's resolution check holds. The check that matters is the one on
# every new connection's peer (transport.py); this one gives a clean verdict before
# connecting, and caching it saves a DNS lookup per callback.
RESOLVE_CACHE_S = 30.0


@functools.lru_cache(maxsize=4096)
def _normalised_url(url: str) -> str:
    # requests' own URL preparation (IDNA, quoting), done once per distinct URL.
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    return str(prepared.url)


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


class Sender:
    """POSTs callbacks; one requests.Session per thread and policy, connections reused."""

    def __init__(self, connect_timeout_s: float, read_timeout_s: float, pool_maxsize: int = 10):
        self.timeout = (connect_timeout_s, read_timeout_s)
        self._pool_maxsize = pool_maxsize
        self._local = threading.local()
        self._resolved: dict[tuple[str, int, bool], tuple[float, NotAllowed | None]] = {}
        self._resolved_lock = threading.Lock()

    def _check_resolved(self, host: str, port: int, allow_private: bool) -> None:
        key = (host, port, allow_private)
        now = time.monotonic()
        with self._resolved_lock:
            cached = self._resolved.get(key)
        if cached is None or cached[0] < now:
            verdict: NotAllowed | None = None
            try:
                check_resolved(host, port, allow_private)
            except NotAllowed as exc:
                verdict = exc
            cached = (now + RESOLVE_CACHE_S, verdict)
            with self._resolved_lock:
                if len(self._resolved) > 4096:
                    self._resolved.clear()
                self._resolved[key] = cached
        if cached[1] is not None:
            raise cached[1]

    def _session(self, allow_private: bool) -> requests.Session:
        sessions: dict[bool, requests.Session] | None = getattr(self._local, "sessions", None)
        if sessions is None:
            sessions = self._local.sessions = {}
        if allow_private not in sessions:
            sessions[allow_private] = guarded_session(allow_private, self._pool_maxsize)
        return sessions[allow_private]

    def send(self, entry: LeasedEntry, policy: CallbackPolicy | None) -> DeliveryVerdict:
        """Try once; never raises for anything the endpoint or the network does."""
        if policy is None:
            return DeliveryVerdict(
                "dead",
                error="merchant not in the config",
                reason="unknown-merchant",
                attempted=False,
            )
        if not policy.secret:
            return DeliveryVerdict(
                "dead",
                error="merchant has no callback secret",
                reason="no-callback-secret",
                attempted=False,
            )
        try:
            parts = check_url(entry.url, policy)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            self._check_resolved(parts.hostname or "", port, policy.allow_private)
        except NotAllowed as exc:
            return DeliveryVerdict("dead", error=exc.detail, reason=exc.reason, attempted=False)
        except (socket.gaierror, UnicodeError) as exc:
            return DeliveryVerdict("retry", error=f"name resolution failed: {_short(exc)}")

        timestamp = int(time.time())
        body = entry.body
        headers = CaseInsensitiveDict(
            {
                "Content-Type": "application/json",
                "Content-Length": str(len(body)),
                "User-Agent": USER_AGENT,
                "X-Payivr-Event-Id": entry.event_id,
                "X-Payivr-Signature": sign_callback(policy.secret, body, timestamp),
            }
        )
        session = self._session(policy.allow_private)
        try:
            # Prepared by hand and given to the session's adapter: Session.post would
            # also merge cookies, auth, hooks and environment settings that a callback
            # never uses, which is a good part of the CPU per callback. The adapter
            # still does the work that matters: pooling, timeouts, TLS verification.
            prepared = requests.PreparedRequest()
            prepared.method = "POST"
            prepared.url = _normalised_url(entry.url)
            prepared.headers = headers
            prepared.body = body
            response = session.get_adapter(prepared.url).send(
                prepared, stream=True, timeout=self.timeout, verify=True, cert=None, proxies={}
            )
        except NotAllowed as exc:  # raised by the peer check of the connection
            return DeliveryVerdict("dead", error=exc.detail, reason=exc.reason, attempted=False)
        except requests.Timeout as exc:
            return DeliveryVerdict("retry", error=f"timeout: {_short(exc)}")
        except requests.RequestException as exc:
            return DeliveryVerdict("retry", error=_short(exc))
        try:
            return self._verdict(response)
        finally:
            response.close()

    def _verdict(self, response: requests.Response) -> DeliveryVerdict:
        status = response.status_code
        # Read (a bounded part of) the body so the connection can be reused; its
        # content is not kept anywhere.
        try:
            read = 0
            for chunk in response.iter_content(8192):
                read += len(chunk)
                if read > MAX_RESPONSE_BYTES:
                    break
        except requests.RequestException as exc:
            if 200 <= status < 300:
                return DeliveryVerdict("delivered", status=str(status))
            return DeliveryVerdict("retry", status=str(status), error=_short(exc))
        if 200 <= status < 300:
            return DeliveryVerdict("delivered", status=str(status))
        if 300 <= status < 400:
            target = urlsplit(response.headers.get("Location", "")).hostname or "?"
            return DeliveryVerdict(
                "retry", status=str(status), error=f"redirect to {target} not followed"
            )
        reason = (response.reason or "")[:80]
        return DeliveryVerdict("retry", status=str(status), error=f"HTTP {status} {reason}".strip())
