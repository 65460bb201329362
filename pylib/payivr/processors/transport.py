"""The one HTTPS POST every processor adapter makes, with errors that are safe to log.

`requests` exceptions can carry URLs and, in some versions, pieces of the request;
adapters therefore never let them escape: a timeout becomes `ProcessorTimeout`, any
other failure a `TransportFailure` naming only its kind and whether the request may
have reached the processor (which decides whether a reversal is needed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import requests

from payivr.core.processor import ProcessorTimeout

CONNECT_TIMEOUT_MAX_S = 3.0


class TransportFailure(Exception):
    """The POST failed without an answer. `may_have_arrived` is False only when the
    connection was never opened, so the processor cannot have acted on it."""

    def __init__(self, kind: str, *, may_have_arrived: bool) -> None:
        super().__init__(kind)
        self.kind = kind
        self.may_have_arrived = may_have_arrived


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    body: bytes


def _never_connected(exc: requests.exceptions.ConnectionError) -> bool:
    # requests wraps urllib3's MaxRetryError, whose `reason` tells a refused or
    # unresolvable connection (nothing sent; NameResolutionError is a subclass in
    # urllib3 2) from one lost mid-request.
    import urllib3.exceptions

    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def post(
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str],
    timeout_s: float,
    verify: bool | str = True,
) -> HttpAnswer:
    """POST ``body`` to ``url``; raise ProcessorTimeout past ``timeout_s``.

    The read timeout is ``timeout_s``; the connection gets at most 3 s of it (a healthy
    endpoint connects in milliseconds), so the whole call stays close to the merchant's
    timeout. Redirects are not followed (a processor endpoint that redirects is
    misconfigured, and a redirect must not carry card data elsewhere).
    """
    try:
        response = requests.post(
            url,
            data=body,
            headers=dict(headers),
            timeout=(min(timeout_s, CONNECT_TIMEOUT_MAX_S), timeout_s),
            verify=verify,
            allow_redirects=False,
        )
        # Answers are small; refuse to buffer anything absurd.
        content = response.content[: 1 << 20]
    except requests.exceptions.ConnectTimeout:
        raise ProcessorTimeout("processor connection timed out") from None
    except requests.exceptions.Timeout:
        raise ProcessorTimeout("processor did not answer in time") from None
    except requests.exceptions.SSLError:
        raise TransportFailure("tls-error", may_have_arrived=False) from None
    except requests.exceptions.ConnectionError as exc:
        never = _never_connected(exc)
        raise TransportFailure(
            "connection-refused" if never else "connection-lost", may_have_arrived=not never
        ) from None
    except requests.exceptions.RequestException:
        raise TransportFailure("request-error", may_have_arrived=True) from None
    return HttpAnswer(response.status_code, dict(response.headers), content)
