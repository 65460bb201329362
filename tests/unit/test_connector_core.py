"""Pure connector parts: settings validation, JSON paths, retry decisions."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from payivr.connectors.client import authorization
from payivr.core.config import ConfigError, parse_config
from payivr.core.connector_paths import PathMissing, PathSyntaxError, map_outputs, parse_path
from payivr.core.connector_retry import parse_retry_after, retry_delay
from payivr.core.connector_settings import ConnectorRetry

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "payivr.example.yaml"


def load(connectors: Any, environ: dict[str, str] | None = None) -> Any:
    data = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    data["connectors"] = connectors
    return parse_config(data, base_dir=EXAMPLE.parent, environ=environ or {})


def problems(connectors: Any, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(connectors, environ)
    return info.value.problems


def test_every_problem_listed_with_its_path() -> None:
    found = problems(
        {
            "zendesk": {
                "base_url": "http://acme.zendesk.com",
                "auth": {"kind": "zendesk", "email": "nobody", "api_token": "pasted-token"},
                "timeouts": {"connect_s": 0, "read_s": "x"},
                "retry": {"attempts": 50},
                "allowed_hosts": ["bad host!"],
                "verify": False,
            },
            "Crm": {"base_url": "https://crm.example", "auth": {"token": "env:X"}},
            "nourl": {},
        }
    )
    assert found == [
        "connectors.zendesk.base_url: http:// is allowed only on loopback"
        " (127.0.0.1, ::1, localhost)",
        "connectors.zendesk.auth.email: must be an email address",
        "connectors.zendesk.auth.api_token: secrets are referenced, not written inline"
        " (use env:NAME or file:KEY)",
        "connectors.zendesk.timeouts.connect_s: must be a positive number",
        "connectors.zendesk.timeouts.read_s: must be a number",
        "connectors.zendesk.retry.attempts: must be a positive integer up to 10",
        "connectors.zendesk.allowed_hosts[0]: not a host name",
        "connectors.zendesk.verify: unknown setting",
        "connectors.Crm: connector name must match [a-z][a-z0-9_-]{0,31}",
        "connectors.Crm.auth.kind: required: one of none, bearer, basic, zendesk",
        "connectors.Crm.auth.token: unknown setting",
        "connectors.nourl.base_url: required (https://host[:port][/prefix])",
    ]
    # The pasted value is never repeated.
    assert not any("pasted-token" in p for p in found)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://user:pw@acme.zendesk.com", "no credentials in the URL (use auth:)"),
        ("https://acme.zendesk.com/?x=1", "no query or fragment in the base URL"),
        ("ftp://acme.zendesk.com", "must be an https:// URL with a host"),
        ("https://acme.zendesk.com:99999", "not a valid URL"),
    ],
)
def test_base_url_rules(url: str, problem: str) -> None:
    assert problems({"z": {"base_url": url}}) == [f"connectors.z.base_url: {problem}"]


def test_allowed_hosts_must_include_the_base_host() -> None:
    assert problems(
        {"z": {"base_url": "https://acme.zendesk.com", "allowed_hosts": ["other.example"]}}
    ) == ["connectors.z.allowed_hosts: must include the base URL's host acme.zendesk.com"]


def test_valid_connectors_and_auth_headers() -> None:
    config = load(
        {
            "zendesk": {
                "base_url": "https://acme.zendesk.com/",
                "auth": {"kind": "zendesk", "email": "a@acme.example", "api_token": "env:ZD"},
            },
            "crm": {
                "base_url": "http://127.0.0.1:9000/api",
                "auth": {"kind": "bearer", "token": "env:CRM"},
            },
            "legacy": {
                "base_url": "https://[::1]:8443",
                "auth": {"kind": "basic", "username": "u", "password": "file:acme_signing"},
                "allowed_hosts": ["::1", "mirror.example"],
            },
            "open": {"base_url": "http://localhost:8080"},
        },
        {"ZD": "tok", "CRM": "bearer-tok"},
    )
    zd, crm, legacy, open_ = (config.connectors[n] for n in ("zendesk", "crm", "legacy", "open"))
    assert zd.base_url == "https://acme.zendesk.com" and zd.allowed_hosts == {"acme.zendesk.com"}
    assert (
        authorization(zd.auth) == "Basic YUBhY21lLmV4YW1wbGUvdG9rZW46dG9r"
    )  # a@acme.example/token:tok
    assert authorization(crm.auth) == "Bearer bearer-tok"
    assert authorization(legacy.auth) == "Basic dTpkZW1vLXNpZ25pbmctc2VjcmV0LWFjbWUtMDAwMQ=="
    assert legacy.allowed_hosts == {"::1", "mirror.example"}
    assert authorization(open_.auth) is None
    assert "tok" not in repr(zd)


@pytest.mark.parametrize(
    ("text", "doc", "value"),
    [
        ("users[0].id", {"users": [{"id": 7}]}, 7),
        ("tickets[-1].status", {"tickets": [{"status": "a"}, {"status": "open"}]}, "open"),
        ("meta.has_more", {"meta": {"has_more": False}}, False),
        ("a_b-c[1][0]", {"a_b-c": [[1], [2]]}, 2),
    ],
)
def test_paths_find_values(text: str, doc: object, value: object) -> None:
    assert parse_path(text).find(doc) == value


@pytest.mark.parametrize(
    ("text", "doc", "message"),
    [
        ("users[0].id", {"users": []}, "users[0].id: no item [0] (list of 0) at users"),
        ("users[0].id", {}, "users[0].id: no key 'users' at (top)"),
        ("users.id", {"users": [1]}, "users.id: not an object at users"),
        ("count[0]", {"count": 3}, "count[0]: not a list at count"),
    ],
)
def test_missing_paths_say_where(text: str, doc: object, message: str) -> None:
    with pytest.raises(PathMissing) as info:
        map_outputs(doc, {"v": parse_path(text)})
    assert str(info.value) == message


@pytest.mark.parametrize("text", ["", "[0]", "a.", "a..b", "a[x]", "a b", ".a", "a[0]b", "1a"])
def test_bad_paths(text: str) -> None:
    with pytest.raises(PathSyntaxError):
        parse_path(text)


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True)
steps = st.lists(st.one_of(names, st.integers(-3, 3)), min_size=1, max_size=6)


@given(first=names, rest=steps)
def test_paths_round_trip(first: str, rest: list[str | int]) -> None:
    text = first + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in rest)
    assert parse_path(text).steps == (first, *rest)


@given(st.text(max_size=12))
def test_any_text_parses_or_raises_cleanly(text: str) -> None:
    try:
        path = parse_path(text)
    except PathSyntaxError:
        return
    assert path.steps and isinstance(path.steps[0], str)


POLICY = ConnectorRetry(attempts=3, backoff_s=0.1, max_retry_after_s=5.0)


def delay(**kw: Any) -> float | None:
    args: dict[str, Any] = dict(
        method="GET",
        status=None,
        timed_out=False,
        connect_failed=False,
        retry_after_s=None,
        attempt=1,
        remaining_s=10.0,
        policy=POLICY,
    )
    args.update(kw)
    return retry_delay(**args)


def test_retry_decisions() -> None:
    assert delay(status=429, retry_after_s=2.0, method="PUT") == 2.0
    assert delay(status=429, retry_after_s=6.0) is None  # past max_retry_after_s
    assert delay(status=429, retry_after_s=2.0, remaining_s=1.5) is None  # past the deadline
    assert delay(status=503) == 0.1 and delay(status=503, attempt=2) == 0.2
    assert delay(status=503, attempt=3) is None  # attempts used up
    assert delay(status=503, method="PUT") is None  # may have been applied
    assert delay(timed_out=True) == 0.1 and delay(timed_out=True, method="PUT") is None
    assert delay(connect_failed=True, method="PUT") == 0.1  # nothing went out
    assert delay(status=404) is None and delay(status=422, method="PUT") is None


def test_retry_after_forms() -> None:
    assert parse_retry_after("93", 0.0) == 93.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    assert parse_retry_after("soon", 0.0) is None and parse_retry_after(None, 0.0) is None


def test_check_config_reports_connector_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from payivr.cli import main

    data = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    data["secrets_file"] = str(EXAMPLE.parent / data["secrets_file"])
    data["connectors"] = {"zendesk": {"base_url": "http://acme.zendesk.com"}}
    path = tmp_path / "payivr.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["check-config", str(path)]) == 2
    assert "connectors.zendesk.base_url: http:// is allowed only on loopback" in (
        capsys.readouterr().err
    )
    data["connectors"] = {"zendesk": {"base_url": "https://acme.zendesk.com"}}
    path.write_text(yaml.safe_dump(data))
    assert main(["check-config", str(path)]) == 0
    assert "1 connector(s): zendesk" in capsys.readouterr().out
