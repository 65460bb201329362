"""tls.cfg: TLS 1.2+, modern suites, mutual TLS and FreeSWITCH-node verification."""

from __future__ import annotations

from pathlib import Path

import pytest

from payivr.core.config_types import MODERN_CIPHERS
from payivr.kamailio.settings import KamailioSettings, Socket, render_tls_cfg


def settings(**kw: object) -> KamailioSettings:
    base: dict[str, object] = {
        "config_path": Path("/etc/payivr/payivr.yaml"),
        "kemi_script": Path("/k/payivr_kemi.py"),
        "runtime_dir": Path("/run/payivr"),
        "advertise_host": "sbc.example.com",
        "listen": (Socket("tls", "10.0.0.1", 5061),),
        "freeswitch_nodes": ("sips:10.0.0.5:5081",),
        "pike_density": 50,
        "tls_certificate": "/etc/payivr/tls/sbc.crt",
        "tls_private_key": "/etc/payivr/tls/sbc.key",
    }
    return KamailioSettings(**{**base, **kw})  # type: ignore[arg-type]


def profiles(text: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("["):
            current = out.setdefault(line.strip("[]"), {})
        elif " = " in line:
            key, _, value = line.partition(" = ")
            current[key] = value
    return out


def test_server_without_mutual_tls_asks_no_client_certificate() -> None:
    p = profiles(render_tls_cfg(settings()))
    server, client = p["server:default"], p["client:default"]
    assert server["method"] == client["method"] == "TLSv1.2+"
    assert server["cipher_list"] == MODERN_CIPHERS and "RSA-AES" not in MODERN_CIPHERS.split(":")[0]
    assert (server["verify_certificate"], server["require_certificate"]) == ("no", "no")
    # towards FreeSWITCH nodes the peer is always verified, our certificate presented
    assert (client["verify_certificate"], client["require_certificate"]) == ("yes", "yes")
    assert client["certificate"] == "/etc/payivr/tls/sbc.crt"


def test_mutual_tls_requires_and_verifies_the_trunk_certificate_against_the_ca() -> None:
    p = profiles(render_tls_cfg(settings(tls_mutual=True, tls_ca_certificate="/ca.pem")))
    assert p["server:default"]["verify_certificate"] == "yes"
    assert p["server:default"]["require_certificate"] == "yes"
    assert p["server:default"]["ca_list"] == p["client:default"]["ca_list"] == "/ca.pem"
    with pytest.raises(ValueError, match="mutual TLS needs ca_certificate"):
        render_tls_cfg(settings(tls_mutual=True))


def test_a_newline_cannot_add_a_tls_cfg_line() -> None:
    with pytest.raises(ValueError, match="newlines"):
        render_tls_cfg(settings(tls_cipher_list="ALL\nverify_certificate = no"))


def test_freeswitch_tls_profile_uses_the_same_modern_suites() -> None:
    from payivr.core.config import load_config
    from tests.unit.helpers import EXAMPLE
    from tests.unit.test_freeswitch_render import params, tree_of, with_fs

    tls = with_fs(load_config(EXAMPLE), freeswitch_nodes=("sips:127.0.0.1:5081",))
    p = params(tree_of(tls)["sip_profiles/payivr.xml"])
    assert p["tls-ciphers"] == MODERN_CIPHERS
    assert p["tls-version"] == "tlsv1.2,tlsv1.3"
