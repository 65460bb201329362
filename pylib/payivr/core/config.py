"""payivr's configuration: one YAML file plus a secrets file or the environment.

`load_config` validates everything before any socket opens and reports every problem
at once, each with its path (`merchants.acme.callback_hosts[0]: not a host name`), so
an operator fixes a config in one pass instead of one error per restart.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from payivr.core.config_types import (
    MODERN_CIPHERS,
    CallbacksConfig,
    CaptureConfig,
    Config,
    EslConfig,
    EventSocketConfig,
    KamailioConfig,
    Listen,
    MerchantConfig,
    ProcessorConfig,
    RateLimitConfig,
    RedisConfig,
    ReturnSettings,
    SentinelConfig,
    ServicesConfig,
    SigningConfig,
    SpeechConfig,
    TlsConfig,
    WatchdogConfig,
)
from payivr.core.configread import Reader, Secret, SecretResolver, load_yaml_file

if TYPE_CHECKING:
    from payivr.core.flow.settings import FlowsConfig
from payivr.core.connector_settings import read_connectors
from payivr.core.siputil import parse_sip_uri
from payivr.core.speech_input import INPUT_MODES

LANGUAGES = ("es", "en", "pt", "nl")
BRANDS = ("visa", "mastercard", "amex", "discover", "diners", "jcb", "maestro", "unionpay")
RETURN_KEYWORDS = ("hangup", "agent")
MERCHANT_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
HOST_NAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
CURRENCY = re.compile(r"^[A-Z]{3}$")

__all__ = [
    "BRANDS",
    "LANGUAGES",
    "CallbacksConfig",
    "CaptureConfig",
    "Config",
    "ConfigError",
    "EslConfig",
    "EventSocketConfig",
    "KamailioConfig",
    "Listen",
    "MerchantConfig",
    "ProcessorConfig",
    "RateLimitConfig",
    "RedisConfig",
    "ReturnSettings",
    "Secret",
    "SentinelConfig",
    "ServicesConfig",
    "SigningConfig",
    "TlsConfig",
    "is_host_name",
    "load_config",
    "parse_config",
]


class ConfigError(Exception):
    """The configuration has problems; `problems` lists all of them with their paths."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def is_host_name(value: str) -> bool:
    """A DNS name or an IP address literal."""
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(HOST_NAME.match(value))


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; raise ConfigError listing every problem."""
    config_path = Path(path)
    data = load_yaml_file(config_path, ConfigError)
    return parse_config(data, base_dir=config_path.parent, environ=environ, path=config_path)


def parse_config(
    data: object,
    *,
    base_dir: Path,
    environ: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> Config:
    """Validate an already-parsed config document (see load_config)."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    root = Reader(data, "", problems)
    if not isinstance(data, dict):
        raise ConfigError(["(top): the config must be a mapping"])
    secrets = SecretResolver(root.get("secrets_file", str, None), base_dir, env, problems)
    services = _services(root.section("services"), secrets, base_dir)
    merchants: dict[str, MerchantConfig] = {}
    merchants_section = root.section("merchants")
    if not merchants_section.keys():
        problems.append("merchants: at least one merchant is needed")
    for merchant_id in merchants_section.keys():  # noqa: SIM118 (a Reader, not a dict)
        m = _merchant(merchant_id, merchants_section.section(merchant_id), secrets)
        if m is not None:
            merchants[merchant_id] = m
    connectors = read_connectors(root.section("connectors"), secrets)
    flows = _flows(root.section("flows"), base_dir, merchants, connectors)
    root.reject_unknown(
        {"secrets_file", "services", "merchants", "agent_api", "connectors", "flows"}
    )
    if problems:
        raise ConfigError(problems)
    return Config(
        path=path or base_dir / "payivr.yaml",
        services=services,
        merchants=merchants,
        raw=data,
        connectors=connectors,
        flows=flows,
    )


def _is_redis_url(url: str) -> bool:
    if url.startswith("unix://"):
        return True
    if not url.startswith(("redis://", "rediss://")):
        return False
    path = urlsplit(url).path.strip("/")
    return path == "" or path.isdigit()


def _services(s: Reader, secrets: SecretResolver, base_dir: Path) -> ServicesConfig:
    r = s.section("redis")
    sentinel = None
    if r.has("sentinel"):
        sn = r.section("sentinel")
        nodes = tuple(
            n
            for n in (sn.host_port(i, v) for i, v in enumerate(sn.get_list("nodes", str)))
            if n is not None
        )
        if not nodes:
            sn.problem("nodes", "at least one sentinel host:port is needed")
        sentinel_password_ref = sn.get("password", str, "")
        sentinel = SentinelConfig(
            master=sn.get("master", str, "payivr"),
            nodes=nodes,
            password=secrets.resolve(sentinel_password_ref, sn.path_of("password"), required=False)
            if sentinel_password_ref
            else None,
        )
        sn.reject_unknown({"master", "nodes", "password"})
    password_ref = r.get("password", str, "")
    redis_cfg = RedisConfig(
        url=r.get(
            "url",
            str,
            "redis://127.0.0.1:6379/0",
            check=_is_redis_url,
            what="a redis://, rediss:// or unix:// URL (its path, if any, a database number)",
        ),
        password=secrets.resolve(password_ref, r.path_of("password")) if password_ref else None,
        sentinel=sentinel,
        socket_timeout_s=r.positive_number("socket_timeout_s", RedisConfig.socket_timeout_s),
        connect_timeout_s=r.positive_number("connect_timeout_s", RedisConfig.connect_timeout_s),
    )
    r.reject_unknown({"url", "password", "sentinel", "socket_timeout_s", "connect_timeout_s"})

    k = s.section("kamailio")
    listens = []
    for i, item in enumerate(
        k.get_list("listen", dict, [{"proto": "udp", "host": "127.0.0.1", "port": 5060}])
    ):
        li = k.item("listen", i, item)
        listens.append(
            Listen(
                proto=li.choice("proto", ("udp", "tcp"), "udp"),
                host=li.get("host", str, "127.0.0.1", check=is_host_name, what="a host name or IP"),
                port=li.port("port", 5060),
            )
        )
    t = k.section("tls")
    tls = TlsConfig(
        enabled=t.get("enabled", bool, False),
        host=t.get("host", str, "127.0.0.1", check=is_host_name, what="a host name or IP"),
        port=t.port("port", 5061),
        certificate=t.get("certificate", str, ""),
        private_key=t.get("private_key", str, ""),
        ca_certificate=t.get("ca_certificate", str, ""),
        mutual=t.get("mutual", bool, False),
        cipher_list=t.get("cipher_list", str, MODERN_CIPHERS),
    )
    if tls.enabled and not (tls.certificate and tls.private_key):
        t.problem("certificate", "TLS is enabled: certificate and private_key are required")
    if tls.mutual and not tls.ca_certificate:
        t.problem("ca_certificate", "mutual TLS needs the CA that signs the trunks' certificates")
    t.reject_unknown(
        {"enabled", "host", "port", "certificate", "private_key", "ca_certificate", "mutual"}
        | {"cipher_list"}
    )
    rl = k.section("rate_limit")
    rate = RateLimitConfig(
        per_source_per_s=rl.positive_int("per_source_per_s", 500),
        per_merchant_per_s=rl.positive_int("per_merchant_per_s", 1000),
        retry_after_s=rl.positive_int("retry_after_s", 5),
    )
    kam = KamailioConfig(
        advertise_host=k.get(
            "advertise_host", str, "127.0.0.1", check=is_host_name, what="a host name or IP"
        ),
        listen=tuple(listens),
        tls=tls,
        rate_limit=rate,
        metrics_port=k.port("metrics_port", 9467) if k.has("metrics_port") else None,
    )
    fs_nodes = tuple(s.get_list("freeswitch_nodes", str, ["sip:127.0.0.1:5080"]))
    for i, node in enumerate(fs_nodes):
        if not _is_node_uri(node):
            s.problem(f"freeswitch_nodes[{i}]", "not a sip: URI like sip:10.0.0.5:5080")
    if not fs_nodes:
        s.problem("freeswitch_nodes", "at least one FreeSWITCH node is needed")

    esl = _esl(s.section("esl"), secrets, base_dir)
    c = s.section("callbacks")
    callbacks = CallbacksConfig(
        retry_for_s=c.positive_int("retry_for_s", 86400),
        connect_timeout_s=c.positive_number("connect_timeout_s", 3.0),
        read_timeout_s=c.positive_number("read_timeout_s", 10.0),
        metrics_port=c.port("metrics_port", 9464),
    )
    w = s.section("watchdog")
    defaults = WatchdogConfig()
    watchdog = WatchdogConfig(
        answer_allowance_s=w.positive_number("answer_allowance_s", defaults.answer_allowance_s),
        prompt_allowance_s=w.positive_number("prompt_allowance_s", defaults.prompt_allowance_s),
        margin_s=w.positive_number("margin_s", defaults.margin_s),
    )
    w.reject_unknown({"answer_allowance_s", "prompt_allowance_s", "margin_s"})
    s.reject_unknown(
        # `freeswitch`, `agent_api` and `rtpengine` are read and validated by their own
        # features (payivr.freeswitch.settings, payivr.agent.settings,
        # payivr.media.settings) from Config.raw.
        {
            "redis",
            "session_ttl_s",
            "kamailio",
            "freeswitch_nodes",
            "freeswitch",
            "esl",
            "callbacks",
            "agent_api",
            "metrics_host",
            "watchdog",
            "rtpengine",
        }
    )
    _distinct_metrics_ports(s, kam, esl, callbacks)
    return ServicesConfig(
        redis=redis_cfg,
        session_ttl_s=s.positive_int("session_ttl_s", 3600),
        kamailio=kam,
        freeswitch_nodes=fs_nodes,
        esl=esl,
        callbacks=callbacks,
        metrics_host=s.get(
            "metrics_host", str, "127.0.0.1", check=is_host_name, what="a host name or IP"
        ),
        watchdog=watchdog,
    )


# A Vosk model directory has its acoustic model here (alphacephei.com/vosk/models).
VOSK_MODEL_FILES = ("am/final.mdl", "conf/model.conf")


def _speech(s: Reader, base_dir: Path) -> SpeechConfig:
    models: dict[str, Path] = {}
    vm = s.section("vosk_models")
    for language in vm.keys():  # noqa: SIM118 (a Reader, not a dict)
        if language not in LANGUAGES:
            vm.problem(language, "must be one of " + ", ".join(LANGUAGES))
            continue
        folder = (base_dir / vm.get(language, str, "")).resolve()
        if not all((folder / name).is_file() for name in VOSK_MODEL_FILES):
            vm.problem(language, f"{folder} is not a Vosk model directory (no am/, conf/)")
            continue
        models[language] = folder
    speech = SpeechConfig(
        pocketsphinx=s.get("pocketsphinx", bool, True),
        vosk_models=models,
        decode_processes=s.positive_int("decode_processes", 2, maximum=16),
    )
    s.reject_unknown({"pocketsphinx", "vosk_models", "decode_processes"})
    return speech


def _distinct_metrics_ports(
    s: Reader, kam: KamailioConfig, esl: EslConfig, callbacks: CallbacksConfig
) -> None:
    """Every service serves /metrics on `metrics_host`: no two on one port, nor on a
    port the ESL application listens on."""
    taken = {esl.listen_port: "esl.listen_port"}
    agent = s.section("agent_api")
    if agent.has("metrics_port"):
        taken.setdefault(agent.port("metrics_port", 9466), "agent_api.metrics_port")
    for where, port in (
        ("kamailio.metrics_port", kam.metrics_port),
        ("esl.metrics_port", esl.metrics_port),
        ("callbacks.metrics_port", callbacks.metrics_port),
    ):
        if port is None:
            continue
        if port in taken:
            s.problem(where, f"{port} is already {taken[port]}")
        else:
            taken[port] = where


def _esl(e: Reader, secrets: SecretResolver, base_dir: Path) -> EslConfig:
    es = e.section("event_socket")
    r = e.section("return")
    proxy = r.get("proxy", str, "", check=_is_bare_sip_uri, what="a sip: or sips: URI")
    returns = ReturnSettings(
        use_refer=r.get("use_refer", bool, True),
        sofia_profile=r.get("sofia_profile", str, "payivr") or "payivr",
        proxy=proxy or None,
    )
    recordings_dir = e.get("recordings_dir", str, "/var/lib/payivr/recordings") or "."
    config = EslConfig(
        listen_host=e.get(
            "listen_host", str, "127.0.0.1", check=is_host_name, what="a host name or IP"
        ),
        listen_port=e.port("listen_port", 8084),
        event_socket=EventSocketConfig(
            host=es.get("host", str, "127.0.0.1"),
            port=es.port("port", 8021),
            password=secrets.resolve(
                es.get("password", str, ""), es.path_of("password"), required=False
            ),
        ),
        prompts_dir=(base_dir / e.get("prompts_dir", str, "var/prompts")).resolve(),
        linger_s=e.non_negative_int("linger_s", 10),
        recordings_dir=(base_dir / recordings_dir).resolve(),
        # 0 is taken as 1: the processor needs a thread to run at all.
        processor_threads=max(1, e.non_negative_int("processor_threads", 64)),
        returns=returns,
        # 0 is taken as 1: a process that takes no call would refuse every one.
        max_calls=max(1, e.non_negative_int("max_calls", 1000)),
        speech=_speech(e.section("speech"), base_dir),
        metrics_port=e.port("metrics_port", 9465),
    )
    e.reject_unknown(
        {
            "listen_host",
            "listen_port",
            "event_socket",
            "prompts_dir",
            "linger_s",
            "recordings_dir",
            "processor_threads",
            "max_calls",
            "return",
            "speech",
            "metrics_port",
        }
    )
    es.reject_unknown({"host", "port", "password"})
    r.reject_unknown({"use_refer", "sofia_profile", "proxy"})
    return config


def _is_bare_sip_uri(value: str) -> bool:
    return parse_sip_uri(value, name_addr=False) is not None


def _is_node_uri(value: str) -> bool:
    """A FreeSWITCH node: a bare SIP URI with no user part (`sip:10.0.0.5:5080`)."""
    uri = parse_sip_uri(value, name_addr=False)
    return uri is not None and uri.user is None


def _merchant(merchant_id: str, m: Reader, secrets: SecretResolver) -> MerchantConfig | None:
    if not MERCHANT_ID.match(merchant_id):
        m.problem("", "merchant id must match [A-Za-z0-9_-]{1,32}")
    sources = m.networks("sources")
    if not m.has("sources"):
        m.problem("sources", "required: the CTI trunk addresses allowed for this merchant")

    sg = m.section("signing")
    signing = SigningConfig(
        required=sg.get("required", bool, True), window_s=sg.positive_int("window_s", 300)
    )
    signing_secret = secrets.resolve(
        m.get("signing_secret", str, ""), m.path_of("signing_secret"), required=signing.required
    )
    callback_secret = secrets.resolve(
        m.get("callback_secret", str, ""), m.path_of("callback_secret")
    )

    p = m.section("processor")
    processor = ProcessorConfig(
        type=p.get("type", str, "sandbox"),
        timeout_s=p.positive_number("timeout_s", 10.0),
        options={
            k: secrets.resolve_if_reference(v, p.path_of(k))
            for k, v in p.items()
            if k not in ("type", "timeout_s")
        },
    )
    _validate_processor(p, processor)

    currencies = tuple(m.get_list("currencies", str, ["EUR"]))
    for i, cur in enumerate(currencies):
        if not CURRENCY.match(cur):
            m.problem(f"currencies[{i}]", "not an ISO 4217 alpha code like EUR")
    default_currency = m.get("default_currency", str, currencies[0] if currencies else "EUR")
    if currencies and default_currency not in currencies:
        m.problem("default_currency", f"{default_currency} is not in currencies")

    brands = m.get_list("brands", str, list(BRANDS))
    for i, b in enumerate(brands):
        if b not in BRANDS:
            m.problem(f"brands[{i}]", f"unknown brand {b!r} (known: {', '.join(BRANDS)})")
    callback_hosts = _hosts(m, "callback_hosts")
    return_hosts = _hosts(m, "return_hosts")
    default_return = m.get("default_return", str, "hangup")
    if default_return not in RETURN_KEYWORDS and parse_sip_uri(default_return) is None:
        m.problem("default_return", "hangup, agent, or a sip:/sips: URI")
    cap = m.section("capture")
    capture = CaptureConfig(
        attempts=cap.positive_int("attempts", 3, maximum=9),
        confirm_card=cap.get("confirm_card", bool, False),
        cvv_optional=cap.get("cvv_optional", bool, False),
        token_sale_cvv=cap.get("token_sale_cvv", bool, False),
        digit_timeout_ms=cap.positive_int("digit_timeout_ms", 5000),
        field_timeout_ms=cap.positive_int("field_timeout_ms", 15000),
        input=cap.choice("input", INPUT_MODES, "dtmf"),
    )
    cap.reject_unknown(
        {
            "attempts",
            "confirm_card",
            "cvv_optional",
            "token_sale_cvv",
            "digit_timeout_ms",
            "field_timeout_ms",
            "input",
        }
    )
    merchant = MerchantConfig(
        id=merchant_id,
        name=m.get("name", str, merchant_id),
        signing_secret=signing_secret,
        callback_secret=callback_secret,
        sources=sources,
        signing=signing,
        processor=processor,
        currencies=currencies,
        default_currency=default_currency,
        brands=frozenset(brands),
        max_amount=m.positive_int("max_amount", 1_000_000),
        callback_hosts=callback_hosts,
        allow_http_callbacks=m.get("allow_http_callbacks", bool, False),
        allow_private_callback_addresses=m.get("allow_private_callback_addresses", bool, False),
        return_hosts=return_hosts,
        default_return=default_return,
        default_language=m.choice("default_language", LANGUAGES, "en"),
        capture=capture,
        record_ivr_leg=m.get("record_ivr_leg", bool, False),
        require_srtp=m.get("require_srtp", bool, False),
    )
    m.reject_unknown(
        {
            "name",
            "signing_secret",
            "callback_secret",
            "sources",
            "signing",
            "processor",
            "currencies",
            "default_currency",
            "brands",
            "max_amount",
            "callback_hosts",
            "allow_http_callbacks",
            "allow_private_callback_addresses",
            "return_hosts",
            "default_return",
            "default_language",
            "capture",
            "record_ivr_leg",
            "require_srtp",
            "agent_api",
        }
    )
    return merchant


def _hosts(m: Reader, key: str) -> tuple[str, ...]:
    hosts = []
    for i, h in enumerate(m.get_list(key, str)):
        if is_host_name(h):
            hosts.append(h.lower())
        else:
            m.problem(f"{key}[{i}]", "not a host name")
    return tuple(hosts)


def _flows(
    f: Reader, base_dir: Path, merchants: Mapping[str, object], connectors: Mapping[str, object]
) -> FlowsConfig:
    # Imported here: the flow validator reads LANGUAGES from this module.
    from payivr.core.flow.settings import read_flows

    return read_flows(
        f, base_dir, merchants=set(merchants), connectors=set(connectors), languages=LANGUAGES
    )


def _validate_processor(p: Reader, processor: ProcessorConfig) -> None:
    # Each processor type validates its own options; the validator is pure and lives
    # beside the order rules so that Kamailio's interpreter never imports an adapter.
    from payivr.core.processor_options import validate_processor_options

    raw = {"type": processor.type, **processor.options}
    for problem in validate_processor_options(raw, p.path_of("")):
        p.problems.append(problem)
