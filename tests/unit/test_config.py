from __future__ import annotations

import pytest

from payivr.core.config import ConfigError, load_config, parse_config
from tests.unit.helpers import EXAMPLE, config_from, example_data


def test_example_config_is_valid() -> None:
    config = load_config(EXAMPLE)
    acme = config.merchants["acme"]
    assert acme.signing_secret.value() == "demo-signing-secret-acme-0001"
    assert acme.source_allowed("127.0.0.1") and not acme.source_allowed("10.1.2.3")
    assert config.services.freeswitch_nodes == ("sip:127.0.0.1:5080",)


def test_secrets_never_show_in_repr() -> None:
    config = load_config(EXAMPLE)
    assert "demo-signing-secret" not in repr(config)


def test_every_problem_is_listed_with_its_path() -> None:
    data = example_data()
    acme = data["merchants"]["acme"]
    acme["callback_hosts"] = ["ok.example.com", "not a host!"]
    acme["currencies"] = ["EUR", "euro"]
    data["services"]["kamailio"]["listen"][0]["port"] = 70000
    acme["capture"]["attempts"] = "three"
    with pytest.raises(ConfigError) as err:
        config_from(data)
    assert err.value.problems == [
        "services.kamailio.listen[0].port: must be a port number (1-65535)",
        "merchants.acme.currencies[1]: not an ISO 4217 alpha code like EUR",
        "merchants.acme.callback_hosts[1]: not a host name",
        "merchants.acme.capture.attempts: must be an integer",
    ]


def test_inline_secret_is_refused_without_echoing_it() -> None:
    data = example_data()
    data["merchants"]["acme"]["signing_secret"] = "hunter2-pasted-inline"
    with pytest.raises(ConfigError) as err:
        config_from(data)
    text = "\n".join(err.value.problems)
    assert "merchants.acme.signing_secret: secrets are referenced" in text
    assert "hunter2" not in text


def test_env_secret_reference() -> None:
    data = example_data()
    data["merchants"]["acme"]["signing_secret"] = "env:ACME_SIGNING"
    with pytest.raises(ConfigError) as err:
        parse_config(data, base_dir=EXAMPLE.parent, environ={})
    assert err.value.problems == [
        "merchants.acme.signing_secret: environment variable ACME_SIGNING is not set"
    ]
    config = parse_config(data, base_dir=EXAMPLE.parent, environ={"ACME_SIGNING": "s3"})
    assert config.merchants["acme"].signing_secret.value() == "s3"


def test_unknown_keys_and_bad_types_are_reported() -> None:
    data = example_data()
    data["merchants"]["acme"]["colour"] = "blue"
    data["merchants"]["acme"]["allow_http_callbacks"] = "yes"
    data["merchants"]["acme"]["default_return"] = "voicemail"
    data["merchants"]["acme"]["brands"] = ["visa", "bitcoin"]
    with pytest.raises(ConfigError) as err:
        config_from(data)
    assert set(err.value.problems) == {
        "merchants.acme.colour: unknown setting",
        "merchants.acme.allow_http_callbacks: must be true or false",
        "merchants.acme.default_return: hangup, agent, or a sip:/sips: URI",
        "merchants.acme.brands[1]: unknown brand 'bitcoin' (known: visa, mastercard, amex, "
        "discover, diners, jcb, maestro, unionpay)",
    }


def test_sip_uris_are_read_by_the_sip_uri_parser() -> None:
    # A prefix check let these through; each request or node would then have failed.
    data = example_data()
    data["merchants"]["acme"]["default_return"] = "sip:"
    data["services"]["freeswitch_nodes"] = ["sip:10.0.0.5:5080", "sip:10.0.0.6:99999"]
    with pytest.raises(ConfigError) as err:
        config_from(data)
    assert err.value.problems == [
        "services.freeswitch_nodes[1]: not a sip: URI like sip:10.0.0.5:5080",
        "merchants.acme.default_return: hangup, agent, or a sip:/sips: URI",
    ]


def test_missing_file_and_bad_yaml(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("merchants: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_tls_enabled_needs_material() -> None:
    data = example_data()
    data["services"]["kamailio"]["tls"] = {"enabled": True, "certificate": ""}
    with pytest.raises(ConfigError) as err:
        config_from(data)
    assert err.value.problems == [
        "services.kamailio.tls.certificate: "
        "TLS is enabled: certificate and private_key are required"
    ]


def _with_sentinel(**sentinel: object) -> dict[str, object]:
    data = example_data()
    data["services"]["redis"]["sentinel"] = {"master": "payivr", "nodes": ["10.0.0.1:26379"]}
    data["services"]["redis"]["sentinel"].update(sentinel)
    return data


def test_sentinel_without_password_has_none() -> None:
    sentinel = config_from(_with_sentinel()).services.redis.sentinel
    assert sentinel is not None
    assert sentinel.nodes == (("10.0.0.1", 26379),)
    assert sentinel.password is None


def test_sentinel_password_by_env_reference() -> None:
    data = _with_sentinel(password="env:SENTINEL_PW")
    config = parse_config(data, base_dir=EXAMPLE.parent, environ={"SENTINEL_PW": "s-pw-1"})
    sentinel = config.services.redis.sentinel
    assert sentinel is not None and sentinel.password is not None
    assert sentinel.password.value() == "s-pw-1"
    assert "s-pw-1" not in repr(config)
    with pytest.raises(ConfigError) as err:
        parse_config(data, base_dir=EXAMPLE.parent, environ={})
    assert err.value.problems == [
        "services.redis.sentinel.password: environment variable SENTINEL_PW is not set"
    ]


def test_sentinel_password_by_file_reference(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The example's own secrets file, plus the Sentinels' password.
    data = _with_sentinel(password="file:sentinel_pw")
    example_secrets = (EXAMPLE.parent / data["secrets_file"]).read_text()
    (tmp_path / "secrets.yaml").write_text(example_secrets + "\nsentinel_pw: from-the-file\n")
    data["secrets_file"] = "secrets.yaml"
    config = parse_config(data, base_dir=tmp_path, environ={})
    sentinel = config.services.redis.sentinel
    assert sentinel is not None and sentinel.password is not None
    assert sentinel.password.value() == "from-the-file"


def test_sentinel_password_inline_is_refused_and_unknown_keys_reported() -> None:
    with pytest.raises(ConfigError) as err:
        config_from(_with_sentinel(password="hunter2-inline", sentinels=["x"]))
    text = "\n".join(err.value.problems)
    assert "services.redis.sentinel.password: secrets are referenced" in text
    assert "services.redis.sentinel" in text and "sentinels" in text
    assert "hunter2" not in text


def test_redis_database_number_and_timeouts() -> None:
    data = example_data()
    data["services"]["redis"].update(
        {"url": "redis://10.0.0.9:6379/4", "socket_timeout_s": 0.5, "connect_timeout_s": 0.2}
    )
    redis_cfg = config_from(data).services.redis
    assert (redis_cfg.db, redis_cfg.socket_timeout_s, redis_cfg.connect_timeout_s) == (4, 0.5, 0.2)
    assert config_from(example_data()).services.redis.db == 0
    data["services"]["redis"].update(
        {"url": "redis://10.0.0.9:6379/four", "socket_timeout_s": 0, "connect_timeout_s": "x"}
    )
    with pytest.raises(ConfigError) as err:
        config_from(data)
    problems = "\n".join(err.value.problems)
    assert "services.redis.url: must be a redis://" in problems
    assert "services.redis.socket_timeout_s: must be a positive number" in problems
    assert "services.redis.connect_timeout_s: " in problems


def test_unix_socket_url_names_its_database_in_the_query() -> None:
    from payivr.core.config_types import RedisConfig

    assert RedisConfig(url="unix:///run/redis/redis.sock?db=2").db == 2
    assert RedisConfig(url="unix:///run/redis/redis.sock").db == 0
