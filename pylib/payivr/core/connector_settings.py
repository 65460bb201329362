"""Named HTTP connectors of the config (`connectors:`): validated settings, no I/O.

A connector is a remote HTTP API a flow may call (Zendesk, a CRM): a base URL, an
authentication whose secret is referenced (`env:NAME` / `file:KEY`), timeouts, a
bounded retry policy and the hosts its requests may reach. The adapter
(payivr.connectors.client) reads these settings; everything here is checked before
any socket opens, every problem reported with its path.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from payivr.core.configread import Reader, Secret, SecretResolver

CONNECTOR_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
AUTH_KINDS = ("none", "bearer", "basic", "zendesk")
_HOST = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


@dataclass(frozen=True)
class ConnectorAuth:
    """How requests authenticate. `kind`: none | bearer | basic | zendesk.

    bearer: `token`; basic: `username` + `password`; zendesk: `email` + `api_token`
    (Zendesk's API token scheme: Basic `{email}/token:{api_token}`).
    """

    kind: str = "none"
    username: str = ""
    secret: Secret = field(default_factory=lambda: Secret("", "nowhere"))

    def __repr__(self) -> str:
        return f"ConnectorAuth(kind={self.kind!r}, username={self.username!r}, secret=<hidden>)"


@dataclass(frozen=True)
class ConnectorTimeouts:
    """Seconds. `overall_s` bounds one `request()` call, retries and waits included."""

    connect_s: float = 2.0
    read_s: float = 3.0
    overall_s: float = 6.0


@dataclass(frozen=True)
class ConnectorRetry:
    """Retries inside one request: at most `attempts` tries in all, within `overall_s`.

    429 is retried after its `Retry-After` (when that fits in the time left); 5xx and
    timeouts only for GET/HEAD, whose repetition cannot duplicate a change.
    """

    attempts: int = 3
    backoff_s: float = 0.2
    max_retry_after_s: float = 5.0


@dataclass(frozen=True)
class ConnectorSettings:
    name: str
    base_url: str
    auth: ConnectorAuth
    timeouts: ConnectorTimeouts
    retry: ConnectorRetry
    allowed_hosts: frozenset[str]

    @property
    def scheme(self) -> str:
        return urlsplit(self.base_url).scheme

    @property
    def host(self) -> str:
        return (urlsplit(self.base_url).hostname or "").lower()


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost`: the only hosts plain http may reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(_HOST.match(value))


def read_connectors(section: Reader, secrets: SecretResolver) -> Mapping[str, ConnectorSettings]:
    """The `connectors:` section: name -> settings (problems go to the reader's list)."""
    out: dict[str, ConnectorSettings] = {}
    for name in section.keys():  # noqa: SIM118 (a Reader, not a dict)
        c = section.section(name)
        if not CONNECTOR_NAME.match(name):
            c.problem("", "connector name must match [a-z][a-z0-9_-]{0,31}")
        settings = _connector(name, c, secrets)
        if settings is not None:
            out[name] = settings
    return out


def _base_url(c: Reader) -> str:
    url = c.get("base_url", str, "")
    if not url:
        c.problem("base_url", "required (https://host[:port][/prefix])")
        return ""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        c.problem("base_url", "not a valid URL")
        return ""
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        c.problem("base_url", "must be an https:// URL with a host")
        return ""
    if parts.scheme == "http" and not is_loopback_host(host):
        c.problem("base_url", "http:// is allowed only on loopback (127.0.0.1, ::1, localhost)")
        return ""
    if parts.username is not None or parts.password is not None:
        c.problem("base_url", "no credentials in the URL (use auth:)")
        return ""
    if parts.query or parts.fragment:
        c.problem("base_url", "no query or fragment in the base URL")
        return ""
    return url.rstrip("/")


def _auth(c: Reader, secrets: SecretResolver) -> ConnectorAuth:
    if not c.has("auth"):
        return ConnectorAuth()
    a = c.section("auth")
    if not a.has("kind"):
        a.problem("kind", "required: one of " + ", ".join(AUTH_KINDS))
    kind = a.choice("kind", AUTH_KINDS, "none")
    known = {"kind"}
    if kind == "bearer":
        known |= {"token"}
        secret = secrets.resolve(a.get("token", str, ""), a.path_of("token"))
        auth = ConnectorAuth(kind, "", secret)
    elif kind == "basic":
        known |= {"username", "password"}
        user = a.get("username", str, "")
        if not a.has("username"):
            a.problem("username", "required for basic auth")
        secret = secrets.resolve(a.get("password", str, ""), a.path_of("password"))
        auth = ConnectorAuth(kind, user, secret)
    elif kind == "zendesk":
        known |= {"email", "api_token"}
        email = a.get("email", str, "", check=lambda v: "@" in v, what="an email address")
        if not a.has("email"):
            a.problem("email", "required: the Zendesk agent's email the API token belongs to")
        secret = secrets.resolve(a.get("api_token", str, ""), a.path_of("api_token"))
        auth = ConnectorAuth(kind, email, secret)
    else:
        auth = ConnectorAuth()
    a.reject_unknown(known)
    return auth


def _connector(name: str, c: Reader, secrets: SecretResolver) -> ConnectorSettings | None:
    base_url = _base_url(c)
    auth = _auth(c, secrets)
    t = c.section("timeouts")
    timeouts = ConnectorTimeouts(
        connect_s=t.positive_number("connect_s", 2.0),
        read_s=t.positive_number("read_s", 3.0),
        overall_s=t.positive_number("overall_s", 6.0),
    )
    t.reject_unknown({"connect_s", "read_s", "overall_s"})
    if timeouts.overall_s < timeouts.connect_s:
        t.problem("overall_s", "must be at least connect_s")
    r = c.section("retry")
    retry = ConnectorRetry(
        attempts=r.positive_int("attempts", 3, maximum=10),
        backoff_s=r.positive_number("backoff_s", 0.2),
        max_retry_after_s=r.positive_number("max_retry_after_s", 5.0),
    )
    r.reject_unknown({"attempts", "backoff_s", "max_retry_after_s"})
    hosts: set[str] = set()
    for i, h in enumerate(c.get_list("allowed_hosts", str)):
        if _is_host(h.lower()):
            hosts.add(h.lower())
        else:
            c.problem(f"allowed_hosts[{i}]", "not a host name")
    c.reject_unknown({"base_url", "auth", "timeouts", "retry", "allowed_hosts"})
    if not base_url:
        return None
    host = (urlsplit(base_url).hostname or "").lower()
    if hosts and host not in hosts:
        c.problem("allowed_hosts", f"must include the base URL's host {host}")
    return ConnectorSettings(
        name=name,
        base_url=base_url,
        auth=auth,
        timeouts=timeouts,
        retry=retry,
        allowed_hosts=frozenset(hosts or {host}),
    )
