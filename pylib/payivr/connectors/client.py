"""Requests to the named HTTP connectors of the config (docs/connectors.md).

Synchronous on purpose: a flow driver runs it in a worker thread, the comment worker
in its pool. One requests.Session per connector keeps connections alive; environment
proxies are ignored (egress goes where the config says), redirects are not followed,
and a URL is only ever sent to a host in the connector's allowlist.

Nothing sensitive is logged or put into an error: no header, no query string (it may
hold a caller's phone number), no body.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import NewConnectionError

from payivr.core.connector_retry import parse_retry_after, retry_delay
from payivr.core.connector_settings import ConnectorAuth, ConnectorSettings

log = logging.getLogger("payivr.connectors")

USER_AGENT = "payivr-connectors/1"
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
ERROR_KINDS = ("timeout", "unavailable", "rejected", "not-found")


@dataclass(frozen=True)
class ConnectorResponse:
    """A 2xx answer: its status, its JSON (None when the body is empty), its headers."""

    status: int
    json: object
    headers: Mapping[str, str] = field(repr=False)


class ConnectorError(Exception):
    """A request that did not give a usable 2xx answer.

    `kind`: timeout | unavailable (no connection, 5xx, 429 past the bound, a body that
    is not JSON) | rejected (4xx other than 404, a host not allowed, a redirect) |
    not-found (404). `status` is the last HTTP status (None: no answer).
    `retry_after_s` is the server's last Retry-After, for a caller that retries later.
    `body` is the parsed JSON of an error answer, for callers that classify it; it is
    never part of the message.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        body: object = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after_s = retry_after_s
        self.body = body


def authorization(auth: ConnectorAuth) -> str | None:
    """The Authorization header value of a connector's auth (None for `none`)."""
    if auth.kind == "bearer":
        return f"Bearer {auth.secret.value()}"
    if auth.kind == "basic":
        raw = f"{auth.username}:{auth.secret.value()}"
    elif auth.kind == "zendesk":
        # Zendesk API tokens: Basic base64("{email}/token:{api_token}").
        raw = f"{auth.username}/token:{auth.secret.value()}"
    else:
        return None
    return "Basic " + base64.b64encode(raw.encode("utf-8")).decode("ascii")


class _Connector:
    def __init__(self, settings: ConnectorSettings) -> None:
        self.settings = settings
        self.session = requests.Session()
        self.session.trust_env = False
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        header = authorization(settings.auth)
        if header is not None:
            self.headers["Authorization"] = header


_QUERY = re.compile(r"\?[^\s\"]*")


class _QueryStringHider(logging.Filter):
    """urllib3 logs every request line, query string included, at DEBUG (also its
    retry and redirect lines): a caller's phone number (`query=phone:...`) would reach
    the logs of a host run with debug logging. The line stays, the query goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = _QUERY.sub("?[query hidden]", message), None
        return True


def hide_query_strings() -> None:
    """Put the filter on urllib3's pool logger once (its level is left alone)."""
    pool_log = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _QueryStringHider) for f in pool_log.filters):
        pool_log.addFilter(_QueryStringHider())


class ConnectorClient:
    """`request(name, method, path, query=..., json_body=...)` for every configured connector."""

    def __init__(self, settings: Mapping[str, ConnectorSettings]) -> None:
        hide_query_strings()
        self._settings = dict(settings)
        self._connectors: dict[str, _Connector] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return sorted(self._settings)

    def close(self) -> None:
        with self._lock:
            for c in self._connectors.values():
                c.session.close()
            self._connectors.clear()

    def _connector(self, name: str) -> _Connector:
        with self._lock:
            found = self._connectors.get(name)
            if found is None:
                settings = self._settings.get(name)
                if settings is None:
                    raise ConnectorError("rejected", f"connector {name!r} is not configured")
                found = self._connectors[name] = _Connector(settings)
            return found

    def _url(self, c: _Connector, path: str) -> str:
        s = c.settings
        if path.startswith("/"):
            return s.base_url + path
        # An absolute URL (a `links.next` of a paginated answer): same scheme, and a
        # host of the allowlist, or it is not sent at all.
        try:
            parts = urlsplit(path)
        except ValueError:
            raise ConnectorError("rejected", f"{s.name}: not a path or URL") from None
        host = (parts.hostname or "").lower()
        if parts.scheme != s.scheme or host not in s.allowed_hosts or parts.username:
            raise ConnectorError("rejected", f"{s.name}: host {host or '?'} is not allowed")
        return path

    def request(
        self,
        name: str,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        json_body: object | None = None,
    ) -> ConnectorResponse:
        """Send one request (with the connector's bounded retries); a 2xx answer or
        ConnectorError. `path` starts with `/` (joined to the base URL) or is an
        absolute URL on an allowed host."""
        c = self._connector(name)
        s = c.settings
        method = method.upper()
        url = self._url(c, path)
        shown = f"{s.name} {method} {urlsplit(url).path}"
        data = None
        headers = dict(c.headers)
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        deadline = time.monotonic() + s.timeouts.overall_s
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConnectorError("timeout", f"{shown}: no answer within the overall timeout")
            status: int | None = None
            retry_after: float | None = None
            timed_out = connect_failed = False
            error: ConnectorError
            try:
                response = c.session.request(
                    method,
                    url,
                    params=query,
                    data=data,
                    headers=headers,
                    timeout=(
                        min(s.timeouts.connect_s, remaining),
                        min(s.timeouts.read_s, remaining),
                    ),
                    allow_redirects=False,
                    stream=True,
                )
            except requests.ConnectTimeout:
                timed_out = connect_failed = True
                error = ConnectorError("timeout", f"{shown}: connect timed out")
            except requests.Timeout:
                timed_out = True
                error = ConnectorError("timeout", f"{shown}: read timed out")
            except requests.ConnectionError as exc:
                # A read error after the request went out is not a failed connection:
                # only a refused/unreachable connection is safe to retry for a PUT.
                connect_failed = _never_connected(exc)
                error = ConnectorError("unavailable", f"{shown}: {type(exc).__name__}")
            except requests.RequestException as exc:
                error = ConnectorError("unavailable", f"{shown}: {type(exc).__name__}")
            else:
                try:
                    body = _read(response, deadline)
                except requests.Timeout:
                    timed_out = True
                    error = ConnectorError("timeout", f"{shown}: read timed out")
                except requests.RequestException as exc:
                    error = ConnectorError("unavailable", f"{shown}: {type(exc).__name__}")
                else:
                    status = response.status_code
                    headers_in = CaseInsensitiveDict(response.headers)
                    if 200 <= status < 300:
                        return ConnectorResponse(status, _json(body, shown, status), headers_in)
                    retry_after = parse_retry_after(
                        response.headers.get("Retry-After"), time.time()
                    )
                    error = _error_for(status, shown, body, retry_after)
                finally:
                    response.close()
            wait = retry_delay(
                method=method,
                status=status,
                timed_out=timed_out,
                connect_failed=connect_failed,
                retry_after_s=retry_after,
                attempt=attempt,
                remaining_s=deadline - time.monotonic(),
                policy=s.retry,
            )
            if wait is None:
                log.info("%s failed after %d attempt(s): %s", shown, attempt, error.kind)
                raise error
            log.info(
                "%s attempt %d: %s (HTTP %s); again in %.2fs",
                shown,
                attempt,
                error.kind,
                status if status is not None else "-",
                wait,
            )
            time.sleep(wait)


def _never_connected(exc: requests.ConnectionError) -> bool:
    """Did the connection fail before anything was sent (refused, unreachable, DNS)?"""
    cause = exc.args[0] if exc.args else None
    return isinstance(getattr(cause, "reason", cause), NewConnectionError)


def _read(response: requests.Response, deadline: float) -> bytes:
    # read_s bounds each socket read; the deadline bounds a server that trickles.
    chunks = []
    size = 0
    for chunk in response.iter_content(65536):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise requests.RequestException("response too large")
        if time.monotonic() > deadline:
            raise requests.Timeout("overall timeout while reading")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: bytes, shown: str, status: int) -> object:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise ConnectorError(
            "unavailable", f"{shown}: HTTP {status} answer is not JSON", status=status
        ) from None


def _error_for(status: int, shown: str, body: bytes, retry_after: float | None) -> ConnectorError:
    try:
        parsed: object = json.loads(body) if body.strip() else None
    except ValueError:
        parsed = None
    if status == 404:
        kind = "not-found"
    elif status == 429 or status >= 500:
        kind = "unavailable"
    else:
        kind = "rejected"
    return ConnectorError(
        kind, f"{shown}: HTTP {status}", status=status, retry_after_s=retry_after, body=parsed
    )
