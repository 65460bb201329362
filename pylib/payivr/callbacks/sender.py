"""One delivery attempt of one outbox entry: checks, signature, POST, verdict."""

from __future__ import annotations

import asyncio
import functools
import re
import socket
import time
from urllib.parse import urlsplit

from payivr.callbacks.client import CallbackClient, ProtocolError, Target, target_of
from payivr.callbacks.outbox_worker import DeliveryVerdict
from payivr.callbacks.policy import CallbackPolicy, NotAllowed, check_url
from payivr.core.signature import sign_callback
from payivr.store.outbox import LeasedEntry

USER_AGENT = b"payivr-callbacks/1"
# Event ids are payivr's own (evt_ + base64url); anything else in a header is refused.
_HEADER_SAFE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


@functools.lru_cache(maxsize=4096)
def _target(url: str, policy: CallbackPolicy) -> Target:
    # Parsing and quoting once per distinct URL and policy (callbacks repeat them).
    return target_of(check_url(url, policy))


class Sender:
    """Signs and POSTs callbacks through one CallbackClient (one event loop)."""

    def __init__(self, connect_timeout_s: float, read_timeout_s: float) -> None:
        self.client = CallbackClient(connect_timeout_s, read_timeout_s)

    async def send(self, entry: LeasedEntry, policy: CallbackPolicy | None) -> DeliveryVerdict:
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
        if not _HEADER_SAFE.fullmatch(entry.event_id):
            return DeliveryVerdict(
                "dead", error="event id not a token", reason="bad-entry", attempted=False
            )
        try:
            to = _target(entry.url, policy)
        except NotAllowed as exc:
            return DeliveryVerdict("dead", error=exc.detail, reason=exc.reason, attempted=False)
        body = entry.body
        signature = sign_callback(policy.secret, body, int(time.time()))
        head = b"".join(
            (
                b"POST ",
                to.target,
                b" HTTP/1.1\r\nHost: ",
                to.host_header,
                b"\r\nContent-Type: application/json\r\nContent-Length: ",
                str(len(body)).encode(),
                b"\r\nUser-Agent: ",
                USER_AGENT,
                b"\r\nX-Payivr-Event-Id: ",
                entry.event_id.encode(),
                b"\r\nX-Payivr-Signature: ",
                signature.encode(),
                b"\r\n\r\n",
            )
        )
        try:
            answer = await self.client.post(to, policy.allow_private, head, body)
        except NotAllowed as exc:  # the resolved or connected address
            return DeliveryVerdict("dead", error=exc.detail, reason=exc.reason, attempted=False)
        except (socket.gaierror, UnicodeError) as exc:
            return DeliveryVerdict("retry", error=f"name resolution failed: {_short(exc)}")
        except TimeoutError:
            return DeliveryVerdict("retry", error="timeout: no answer in time")
        except (OSError, ProtocolError, asyncio.IncompleteReadError) as exc:
            return DeliveryVerdict("retry", error=_short(exc))
        status = answer.status
        if 200 <= status < 300:
            return DeliveryVerdict("delivered", status=str(status))
        if 300 <= status < 400:
            target = _host_of(answer.location)
            return DeliveryVerdict(
                "retry", status=str(status), error=f"redirect to {target} not followed"
            )
        return DeliveryVerdict(
            "retry", status=str(status), error=f"HTTP {status} {answer.reason}".strip()
        )


def _host_of(location: str) -> str:
    try:
        return urlsplit(location).hostname or "?"
    except ValueError:
        return "?"
