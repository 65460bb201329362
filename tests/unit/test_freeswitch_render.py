"""The FreeSWITCH configuration rendered from a payivr config (pure: no FreeSWITCH)."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET  # our own rendered output, not untrusted input
from pathlib import Path
from typing import Any

import pytest

from payivr.core.config import Config, load_config
from payivr.freeswitch.render import CDR_MODULES, render_tree, write_tree
from payivr.freeswitch.settings import FreeswitchConfigError, freeswitch_settings
from tests.conftest import EXAMPLE_CONFIG


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(EXAMPLE_CONFIG)


def with_fs(config: Config, fs: dict[str, Any] | None = None, **services: Any) -> Config:
    raw = dict(config.raw)
    raw_services = dict(raw["services"])  # type: ignore[arg-type]
    if fs is not None:
        raw_services["freeswitch"] = fs
    raw["services"] = raw_services
    svc = dataclasses.replace(config.services, **services) if services else config.services
    return dataclasses.replace(config, raw=raw, services=svc)


def tree_of(config: Config) -> dict[str, ET.Element]:
    return {
        k: ET.fromstring(v)  # noqa: S314
        for k, v in render_tree(freeswitch_settings(config)).items()
    }


def params(root: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in root.iter("param")}


def test_every_file_is_well_formed_xml(config: Config) -> None:
    tree = render_tree(freeswitch_settings(config))
    assert {
        "freeswitch.xml",
        "vars.xml",
        "dialplan/payivr.xml",
        "sip_profiles/payivr.xml",
        "autoload_configs/event_socket.conf.xml",
        "autoload_configs/modules.conf.xml",
        "lang/es.xml",
        "lang/en.xml",
        "lang/pt.xml",
        "lang/nl.xml",
    } <= set(tree)
    for name, text in tree.items():
        ET.fromstring(text)  # noqa: S314  (raises on malformed XML)
        assert "{{" not in text, name


def test_modules_include_say_languages_and_no_cdr_module(config: Config) -> None:
    modules = [
        m.get("module") for m in tree_of(config)["autoload_configs/modules.conf.xml"].iter("load")
    ]
    for needed in (
        "mod_sofia",
        "mod_event_socket",
        "mod_dptools",
        "mod_dialplan_xml",
        "mod_sndfile",
        "mod_say_es",
        "mod_say_en",
        "mod_say_pt",
        "mod_say_nl",
    ):
        assert needed in modules
    assert not set(modules) & set(CDR_MODULES)
    assert not [m for m in modules if m and "cdr" in m]


def test_event_socket_on_loopback_with_the_configured_password(config: Config) -> None:
    p = params(tree_of(config)["autoload_configs/event_socket.conf.xml"])
    assert p["listen-ip"] == "127.0.0.1"
    assert p["listen-port"] == "8021"
    assert p["password"] == "demo-esl-password-0001"  # from config/secrets.example.yaml
    assert p["apply-inbound-acl"] == "payivr_esl"


@pytest.mark.parametrize("password", ["ClueCon", ""])
def test_default_or_empty_event_socket_password_is_refused(config: Config, password: str) -> None:
    from payivr.core.config import Secret

    es = dataclasses.replace(config.services.esl.event_socket, password=Secret(password, "test"))
    bad = with_fs(config, esl=dataclasses.replace(config.services.esl, event_socket=es))
    with pytest.raises(FreeswitchConfigError, match=r"event_socket\.password"):
        freeswitch_settings(bad)


def test_log_levels_stay_above_debug(config: Config) -> None:
    tree = tree_of(config)
    assert params(tree["autoload_configs/switch.conf.xml"])["loglevel"] == "notice"
    for name in ("autoload_configs/console.conf.xml", "autoload_configs/logfile.conf.xml"):
        levels = [m.get("value", "") for m in tree[name].iter("map")]
        assert levels and all("debug" not in v and "all" not in v.split(",") for v in levels)
    with pytest.raises(FreeswitchConfigError, match="log_level"):
        freeswitch_settings(with_fs(config, {"log_level": "debug"}))


def _payment_extension(tree: dict[str, ET.Element]) -> ET.Element:
    ext = tree["dialplan/payivr.xml"].find(".//extension[@name='payivr-payment']")
    assert ext is not None
    return ext


def test_payment_extension_sets_sensitive_dtmf_before_the_socket(config: Config) -> None:
    ext = _payment_extension(tree_of(config))
    actions = [(a.get("application"), a.get("data")) for a in ext.iter("action")]
    names = [a for a, _ in actions]
    assert ("set", "sensitive_dtmf=true") in actions
    socket_at = names.index("socket")
    assert actions.index(("set", "sensitive_dtmf=true")) < socket_at
    assert actions.index(("set", "socket_resume=true")) < socket_at
    assert actions[socket_at][1] == "127.0.0.1:8084 async full"
    # whatever the socket leaves behind goes to the fallback
    assert actions[socket_at + 1] == ("transfer", "payivr-fallback XML payivr")
    assert [a.get("data") for a in ext.iter("anti-action")][-1] == "403 Forbidden"


def test_payment_extension_accepts_only_kamailio_with_a_session(config: Config) -> None:
    ext = _payment_extension(tree_of(config))
    rules = {r.get("field"): re.compile(r.get("expression", "")) for r in ext.iter("regex")}
    addr, session = rules["network_addr"], rules["${sip_h_X-Payivr-Session}"]
    assert addr.search("127.0.0.1") and not addr.search("127.0.0.10")
    assert not addr.search("10.0.0.1")
    assert session.search("q3Zc2k9mW1x0hP4rT7uYbA") and not session.search("")
    assert not session.search("x; rm -rf /")
    custom = with_fs(config, {"kamailio_addresses": ["10.1.2.3", "10.1.2.4"]})
    addr = {
        r.get("field"): re.compile(r.get("expression", ""))
        for r in _payment_extension(tree_of(custom)).iter("regex")
    }["network_addr"]
    assert addr.search("10.1.2.4") and not addr.search("127.0.0.1")
    acl = tree_of(custom)["autoload_configs/acl.conf.xml"]
    kam = acl.find(".//list[@name='payivr_kamailio']")
    assert kam is not None and kam.get("default") == "deny"
    assert [n.get("cidr") for n in kam] == ["10.1.2.3/32", "10.1.2.4/32"]


def test_fallback_returns_the_call_as_failed_ivr_unavailable(config: Config) -> None:
    dp = tree_of(config)["dialplan/payivr.xml"]
    ext = dp.find(".//extension[@name='payivr-fallback']")
    assert ext is not None
    data = [a.get("data") for a in ext.iter("action")]
    assert "sip_bye_h_X-Pay-Result=failed" in data
    assert "sip_bye_h_X-Pay-Reason=ivr-unavailable" in data
    # the fallback extensions come before the payment one (first match wins on transfer)
    names = [e.get("name") for e in dp.iter("extension")]
    assert names.index("payivr-fallback-handled") < names.index("payivr-fallback")
    assert names.index("payivr-fallback") < names.index("payivr-payment")


def test_srtp_offered_by_default_and_required_when_configured(config: Config) -> None:
    def srtp(c: Config) -> set[str]:
        return {
            p.get("data", "")
            for p in tree_of(c)["vars.xml"].iter("X-PRE-PROCESS")
            if "rtp_secure_media" in p.get("data", "")
        }

    assert srtp(config) == {
        "rtp_secure_media_inbound=optional",
        "rtp_secure_media_outbound=optional",
    }
    assert srtp(with_fs(config, {"srtp": "mandatory"})) == {
        "rtp_secure_media_inbound=mandatory",
        "rtp_secure_media_outbound=mandatory",
    }
    with pytest.raises(FreeswitchConfigError, match="srtp"):
        freeswitch_settings(with_fs(config, {"srtp": "sometimes"}))


def test_tls_follows_a_sips_node(config: Config) -> None:
    plain = params(tree_of(config)["sip_profiles/payivr.xml"])
    assert plain["tls"] == "false"
    tls_cfg = with_fs(
        config,
        {"tls": {"cert_dir": "/etc/payivr/fs-tls"}},
        freeswitch_nodes=("sips:127.0.0.1:5081",),
    )
    p = params(tree_of(tls_cfg)["sip_profiles/payivr.xml"])
    assert (p["tls"], p["tls-only"], p["tls-sip-port"]) == ("true", "true", "5081")
    assert p["tls-cert-dir"] == "/etc/payivr/fs-tls"
    assert "tlsv1.1" not in p["tls-version"]


def test_languages_point_say_at_their_module(config: Config) -> None:
    tree = tree_of(config)
    for lang in ("es", "en", "pt", "nl"):
        language = tree[f"lang/{lang}.xml"].find("language")
        assert language is not None
        assert language.get("say-module") == lang
        assert language.find("phrases/macros") is not None
        assert language.get("sound-prefix", "").endswith(f"prompts/{lang}")


def test_write_tree_is_private_and_idempotent(config: Config, tmp_path: Path) -> None:
    tree = render_tree(freeswitch_settings(config))
    first = write_tree(tree, tmp_path)
    again = write_tree(tree, tmp_path)
    assert first == again
    es = tmp_path / "autoload_configs" / "event_socket.conf.xml"
    assert es.stat().st_mode & 0o777 == 0o640
    assert not list(tmp_path.rglob("*.tmp"))


def test_services_freeswitch_through_the_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["secrets_file"] = str((EXAMPLE_CONFIG.parent / data["secrets_file"]).resolve())
    data["services"]["freeswitch"] = {
        "srtp": "mandatory",
        "log_level": "warning",
        "rtp_ports": [20000, 20999],
    }
    path = tmp_path / "payivr.yaml"
    path.write_text(yaml.safe_dump(data))
    from payivr.cli import main

    assert main(["freeswitch", "render", "--config", str(path), "--out", str(tmp_path / "fs")]) == 0
    vars_xml = (tmp_path / "fs" / "vars.xml").read_text()
    assert "rtp_secure_media_inbound=mandatory" in vars_xml
    switch = params(
        ET.fromstring(  # noqa: S314
            (tmp_path / "fs" / "autoload_configs" / "switch.conf.xml").read_text()
        )
    )
    assert (switch["loglevel"], switch["rtp-start-port"], switch["rtp-end-port"]) == (
        "warning",
        "20000",
        "20999",
    )
    data["services"]["freeswitch"] = {"srtp": "sometimes", "log_level": "debug"}
    path.write_text(yaml.safe_dump(data))
    assert (
        main(["freeswitch", "render", "--config", str(path), "--out", str(tmp_path / "fs2")]) == 2
    )  # both problems reported, nothing written
    assert not (tmp_path / "fs2").exists()
    err = capsys.readouterr().err
    assert "services.freeswitch.srtp" in err and "services.freeswitch.log_level" in err


def test_agent_mode_adds_the_secure_trunk_extension_before_payments(config: Config) -> None:
    plain = tree_of(config)["dialplan/payivr.xml"]
    assert plain.find(".//extension[@name='payivr-agent-trunk']") is None
    raw = dict(config.raw)
    raw["services"] = {**raw["services"], "agent_api": {"esl_listen_port": 8099}}  # type: ignore[dict-item]
    dialplan = tree_of(dataclasses.replace(config, raw=raw))["dialplan/payivr.xml"]
    names = [e.get("name") for e in dialplan.iter("extension")]
    assert names.index("payivr-agent-trunk") < names.index("payivr-payment")
    agent = dialplan.find(".//extension[@name='payivr-agent-trunk']")
    assert agent is not None
    sockets = [a.get("data") for a in agent.iter("action") if a.get("application") == "socket"]
    assert sockets == ["127.0.0.1:8099 async full"]
    addr = {r.get("field"): r.get("expression") for r in agent.iter("regex")}["network_addr"]
    assert addr == r"^(127\.0\.0\.1)$"
