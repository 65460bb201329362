"""One delivery attempt of one outbox entry: checks, signature, POST, verdict."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from payivr.callbacks.policy import CallbackPolicy, NotAllowed, check_resolved, check_url
from payivr.callbacks.transport import guarded_session
from payivr.core.signature import sign_callback
from payivr.store.outbox import LeasedEntry

USER_AGENT = "payivr-callbacks/1"
MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave. `kind`: delivered | retry | dead."""

    kind: str
    status: str = ""  # HTTP status code as text, or "" when no response came
    error: str = ""  # short, safe description (never the body)
    reason: str = ""  # stable id for dead entries (host-not-allowed, ...)
    attempted: bool = True  # False: refused before anything went out


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


class Sender:
    """POSTs callbacks; one requests.Session per thread and policy, connections reused."""

    def __init__(self, connect_timeout_s: float, read_timeout_s: float, pool_maxsize: int = 10):
        self.timeout = (connect_timeout_s, read_timeout_s)
        self._pool_maxsize = pool_maxsize
        self._local = threading.local()

    def _session(self, allow_private: bool) -> requests.Session:
        sessions: dict[bool, requests.Session] | None = getattr(self._local, "sessions", None)
        if sessions is None:
            sessions = self._local.sessions = {}
        if allow_private not in sessions:
            sessions[allow_private] = guarded_session(allow_private, self._pool_maxsize)
        return sessions[allow_private]

    def send(self, entry: LeasedEntry, policy: CallbackPolicy | None) -> Outcome:
        """Try once; never raises for anything the endpoint or the network does."""
        if policy is None:
            return Outcome(
                "dead",
                error="merchant not in the config",
                reason="unknown-merchant",
                attempted=False,
            )
        if not policy.secret:
            return Outcome(
                "dead",
                error="merchant has no callback secret",
                reason="no-callback-secret",
                attempted=False,
            )
        try:
            parts = check_url(entry.url, policy)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            check_resolved(parts.hostname or "", port, policy.allow_private)
        except NotAllowed as exc:
            return Outcome("dead", error=exc.detail, reason=exc.reason, attempted=False)
        except (socket.gaierror, UnicodeError) as exc:
            return Outcome("retry", error=f"name resolution failed: {_short(exc)}")

        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Payivr-Event-Id": entry.event_id,
            "X-Payivr-Signature": sign_callback(policy.secret, entry.body, timestamp),
        }
        session = self._session(policy.allow_private)
        try:
            response = session.post(
                entry.url,
                data=entry.body,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            )
        except NotAllowed as exc:  # raised by the peer check of the connection
            return Outcome("dead", error=exc.detail, reason=exc.reason, attempted=False)
        except requests.Timeout as exc:
            return Outcome("retry", error=f"timeout: {_short(exc)}")
        except requests.RequestException as exc:
            return Outcome("retry", error=_short(exc))
        try:
            return self._verdict(response)
        finally:
            response.close()

    def _verdict(self, response: requests.Response) -> Outcome:
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
                return Outcome("delivered", status=str(status))
            return Outcome("retry", status=str(status), error=_short(exc))
        if 200 <= status < 300:
            return Outcome("delivered", status=str(status))
        if 300 <= status < 400:
            target = urlsplit(response.headers.get("Location", "")).hostname or "?"
            return Outcome("retry", status=str(status), error=f"redirect to {target} not followed")
        reason = (response.reason or "")[:80]
        return Outcome("retry", status=str(status), error=f"HTTP {status} {reason}".strip())
