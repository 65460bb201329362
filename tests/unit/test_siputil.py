"""The one SIP URI parser (payivr.core.siputil): examples and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payivr.core.siputil import SipUri, parse_sip_uri, uri_host

# -- examples -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "uri", "host"),
    [
        (
            "sip:agent@PBX.example.com:5060;transport=tcp",
            "sip:agent@PBX.example.com:5060;transport=tcp",
            "pbx.example.com",
        ),
        (
            '"Q" <sips:queue@[2001:db8::1]:5061>;tag=1',
            "sips:queue@[2001:db8::1]:5061",
            "2001:db8::1",
        ),
        ("<sip:10.1.2.3>", "sip:10.1.2.3", "10.1.2.3"),
        ('"Agent 7" <sip:7@pbx>', "sip:7@pbx", "pbx"),
        ("Agent <sip:7@pbx?Replaces=abc>", "sip:7@pbx?Replaces=abc", "pbx"),
        ("SIP:7@PBX", "sip:7@PBX", "pbx"),  # the scheme is case-insensitive (RFC 3261)
    ],
)
def test_examples(text: str, uri: str, host: str) -> None:
    parsed = parse_sip_uri(text)
    assert parsed is not None and str(parsed) == uri and parsed.hostname == host
    assert uri_host(text) == host


@pytest.mark.parametrize(
    "text",
    [
        "not a uri",
        "",
        "tel:+34910000000",
        "http://pbx.example.com",
        "sip:",
        "sip:@pbx",
        "sip:pbx:0",
        "sip:pbx:65536",
        "sip:pbx example",
        "<sip:pbx",  # unbalanced bracket
        "Agent sip:7@pbx",  # a display name needs the brackets
        "<sip:a@<b>>",
    ],
)
def test_not_sip_uris(text: str) -> None:
    assert parse_sip_uri(text) is None
    assert uri_host(text) == ""


def test_bare_only_refuses_a_name_addr() -> None:
    assert parse_sip_uri("<sip:10.0.0.5:5080>", name_addr=False) is None
    assert parse_sip_uri("sip:10.0.0.5:5080", name_addr=False) == SipUri(
        "sip", None, "10.0.0.5", 5080
    )


@pytest.mark.parametrize(
    ("text", "secure"),
    [
        ("sips:fs1.example:5061", True),
        ("sip:h:5080;transport=TLS", True),
        ("sip:h:5080;transport=tcp", False),
        ("sip:h?transport=tls", False),  # a header, not the URI's transport
        ("sip:h;maddr=x;transport=tls", True),
    ],
)
def test_secure(text: str, secure: bool) -> None:
    parsed = parse_sip_uri(text)
    assert parsed is not None and parsed.secure is secure


# -- properties ---------------------------------------------------------------------

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_label = st.text(alphabet=_ALNUM, min_size=1, max_size=12)
_names = st.lists(_label, min_size=1, max_size=4).map(".".join)
_ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_ipv6 = st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8).map(
    lambda groups: "[" + ":".join(f"{g:x}" for g in groups) + "]"
)
_users = st.none() | st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()&=+$,%", min_size=1, max_size=16
)
_params = st.lists(st.tuples(_label, _label).map(lambda kv: f";{kv[0]}={kv[1]}"), max_size=3).map(
    "".join
)
uris = st.builds(
    SipUri,
    scheme=st.sampled_from(["sip", "sips"]),
    user=_users,
    host=_names | _ipv4 | _ipv6,
    port=st.none() | st.integers(1, 65535),
    params=_params,
)
_display = st.none() | st.text(alphabet="abcdefghijklmnopqrstuvwxyz 0123456789", max_size=12)


@given(uris)
def test_a_written_uri_parses_back_to_its_parts(uri: SipUri) -> None:
    assert parse_sip_uri(str(uri)) == uri
    assert parse_sip_uri(str(uri), name_addr=False) == uri


@given(uris, _display, st.booleans(), _params)
def test_a_name_addr_gives_its_uri(
    uri: SipUri, display: str | None, quoted: bool, header_params: str
) -> None:
    name = "" if display is None else (f'"{display}" ' if quoted else f"{display.strip()} ")
    text = f"{name}<{uri}>{header_params}"
    assert parse_sip_uri(text) == uri
    assert parse_sip_uri(text, name_addr=False) is None
    assert uri_host(text) == uri.host.strip("[]").lower()


@given(uris)
def test_the_scheme_is_case_insensitive(uri: SipUri) -> None:
    text = str(uri)
    shouted = text[: len(uri.scheme)].upper() + text[len(uri.scheme) :]
    assert parse_sip_uri(shouted) == uri


@given(st.text(max_size=80))
def test_any_text_parses_to_a_usable_uri_or_none(text: str) -> None:
    parsed = parse_sip_uri(text)
    if parsed is None:
        assert uri_host(text) == ""
        return
    assert parsed.scheme in ("sip", "sips")
    assert parsed.port is None or 0 < parsed.port < 65536
    assert parsed.hostname and parsed.hostname == parsed.hostname.lower()
    assert not any(c.isspace() for c in str(parsed))
    assert parse_sip_uri(str(parsed)) == parsed  # parsing what it gives is stable
