"""What payivr's FreeSWITCH configuration needs, derived from a payivr Config.

Most values come from sections every payivr config has (the FreeSWITCH node URIs in
`services.freeswitch_nodes`, Kamailio's listen addresses, the event socket and the
ESL application's address). Node-level knobs that only FreeSWITCH uses live in an
optional `services.freeswitch` section, read from `Config.raw` and validated here:

    services:
      freeswitch:
        srtp: optional          # optional (offer/accept) | mandatory | forbidden
        tls: {enabled: false, only: false, port: 5081, cert_dir: /etc/freeswitch/tls,
              verify_policy: none}
        rtp_ports: [16384, 32768]
        log_level: notice       # info | notice | warning | err: never debug
        max_sessions: 1000
        sessions_per_second: 100
        kamailio_addresses: []  # default: Kamailio's listen/advertise IP addresses
        say_sounds: {}          # lang -> sound prefix for mod_say; default prompts_dir/<lang>
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from payivr.core.config import LANGUAGES, Config
from payivr.core.configread import Reader
from payivr.core.flow.settings import EntryPoint, QueueSettings
from payivr.core.siputil import parse_sip_uri

SRTP_MODES = ("optional", "mandatory", "forbidden")
LOG_LEVELS = ("info", "notice", "warning", "err")
# FreeSWITCH log level names from the least to the most severe kept in the log.
_LEVEL_ORDER = ("info", "notice", "warning", "err", "crit", "alert")
TLS_VERIFY_POLICIES = ("none", "in", "out", "all", "subjects_in", "subjects_out", "subjects_all")
# FreeSWITCH's well-known default password: refused, never written.
DEFAULT_PASSWORD = "ClueCon"  # noqa: S105


class FreeswitchConfigError(Exception):
    """The config cannot produce a safe FreeSWITCH configuration; lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class SipNode:
    """One FreeSWITCH node as Kamailio reaches it (an entry of services.freeswitch_nodes)."""

    host: str
    port: int
    tls: bool


@dataclass(frozen=True)
class FreeswitchSettings:
    """Everything the templates need, validated."""

    node: SipNode
    sip_port: int
    rtp_ip: str
    srtp: str
    tls_enabled: bool
    tls_only: bool
    tls_port: int
    tls_cert_dir: str
    tls_verify_policy: str
    rtp_ports: tuple[int, int]
    log_level: str
    max_sessions: int
    sessions_per_second: int
    kamailio_addresses: tuple[str, ...]
    esl_targets: tuple[tuple[str, int], ...]
    event_socket_host: str
    event_socket_port: int
    event_socket_password: str
    prompts_dir: Path
    say_sounds: Mapping[str, str]
    agent_socket: tuple[str, int] | None = None
    """The agent service's outbound socket, when agent-assisted mode is configured."""
    flow_entries: tuple[EntryPoint, ...] = ()
    """Call flows' entry points (flows.entry_points): the payivr-flow extension."""
    queues: tuple[QueueSettings, ...] = ()
    """Call flows' queues (flows.queues): fifo.conf."""

    @property
    def log_levels(self) -> str:
        """The console/logfile map value: this level and everything more severe."""
        return ",".join(_LEVEL_ORDER[_LEVEL_ORDER.index(self.log_level) :])


def parse_node(uri: str) -> SipNode | None:
    """`sip:10.0.0.5:5080`, `sips:fs1.example:5061`, `sip:h:5080;transport=tls`."""
    parsed = parse_sip_uri(uri, name_addr=False)
    if parsed is None or parsed.user is not None:
        return None
    port = parsed.port or (5061 if parsed.secure else 5060)
    return SipNode(host=parsed.hostname, port=port, tls=parsed.secure)


def _ip_literal(value: str) -> str | None:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    return None if ip.is_unspecified else str(ip)


FREESWITCH_KEYS = frozenset(
    {
        "srtp",
        "tls",
        "rtp_ip",
        "sip_port",
        "rtp_ports",
        "log_level",
        "max_sessions",
        "sessions_per_second",
        "kamailio_addresses",
        "say_sounds",
    }
)
TLS_KEYS = frozenset({"enabled", "only", "port", "cert_dir", "verify_policy"})


def freeswitch_settings(config: Config, node_uri: str | None = None) -> FreeswitchSettings:
    """Derive and validate the FreeSWITCH settings for one node (default: the first)."""
    problems: list[str] = []
    services = Reader(config.raw, "", problems).section("services")
    fs = services.section("freeswitch")

    nodes = config.services.freeswitch_nodes
    uri = node_uri or nodes[0]
    where = f"freeswitch_nodes[{nodes.index(uri)}]" if uri in nodes else "freeswitch_nodes"
    node = parse_node(uri)
    if node is None:
        services.problem(where, f"{uri!r} is not a sip:/sips: URI with an IP and port")
        node = SipNode("127.0.0.1", 5080, False)
    elif _ip_literal(node.host) is None:
        services.problem(where, f"{uri!r}: FreeSWITCH binds an IP address; use one in the URI")

    srtp = fs.choice("srtp", SRTP_MODES, "optional")
    tls = fs.section("tls")
    tls_enabled = tls.get("enabled", bool, False) or node.tls
    tls_only = tls.get("only", bool, node.tls)
    tls_port = tls.int_range("port", node.port if node.tls else 5081, 1, 65535)
    sip_port = node.port if not node.tls else fs.int_range("sip_port", 5080, 1, 65535)
    verify = tls.choice("verify_policy", TLS_VERIFY_POLICIES, "none")

    ports = fs.get_list("rtp_ports", int, [16384, 32768])
    rtp_ports = (16384, 32768)
    if len(ports) == 2 and 1024 <= ports[0] < ports[1] <= 65535:
        rtp_ports = (ports[0], ports[1])
    else:
        fs.problem("rtp_ports", "must be [first, last] with 1024 <= first < last <= 65535")

    log_level = fs.get(
        "log_level",
        str,
        "notice",
        check=lambda v: v in LOG_LEVELS,
        what=f"one of {', '.join(LOG_LEVELS)} (debug levels can show collected input)",
    )

    kam = config.services.kamailio
    declared = fs.get_list("kamailio_addresses", str)
    for i, address in enumerate(declared):
        if _ip_literal(address) is None:
            fs.problem(f"kamailio_addresses[{i}]", "must be an IP address")
    candidates = declared or [li.host for li in kam.listen] + [kam.advertise_host]
    if not declared and kam.tls.enabled:
        candidates.append(kam.tls.host)
    addresses = tuple(dict.fromkeys(a for a in map(_ip_literal, candidates) if a))
    if not addresses:
        fs.problem(
            "kamailio_addresses",
            "Kamailio listens on no IP literal; list the addresses its relayed calls come from",
        )

    esl = config.services.esl
    esl_host = _ip_literal(esl.listen_host) or "127.0.0.1"
    password = esl.event_socket.password.value() if esl.event_socket.password else ""
    if not password or password == DEFAULT_PASSWORD:
        services.at("esl.event_socket").problem(
            "password", "set a non-default password (env:/file: reference)"
        )

    say: dict[str, str] = {lang: str(esl.prompts_dir / lang) for lang in LANGUAGES}
    say_sounds = fs.section("say_sounds")
    for lang in say_sounds.keys():  # noqa: SIM118 (a Reader)
        if lang not in LANGUAGES:
            say_sounds.problem(lang, "unknown language")
        else:
            say[lang] = say_sounds.get(lang, str, say[lang])

    max_sessions = fs.int_range("max_sessions", 1000, 1, 100000)
    sessions_per_second = fs.int_range("sessions_per_second", 100, 1, 10000)
    rtp_ip = fs.get("rtp_ip", str, node.host)
    cert_dir = tls.get("cert_dir", str, "/etc/freeswitch/tls")
    fs.reject_unknown(FREESWITCH_KEYS)
    tls.reject_unknown(TLS_KEYS)
    agent_socket = _agent_socket(config, problems)
    if problems:
        raise FreeswitchConfigError(problems)
    return FreeswitchSettings(
        node=node,
        sip_port=sip_port,
        rtp_ip=rtp_ip,
        srtp=srtp,
        tls_enabled=tls_enabled,
        tls_only=tls_only,
        tls_port=tls_port,
        tls_cert_dir=cert_dir,
        tls_verify_policy=verify,
        rtp_ports=rtp_ports,
        log_level=log_level,
        max_sessions=max_sessions,
        sessions_per_second=sessions_per_second,
        kamailio_addresses=addresses,
        esl_targets=((esl_host, esl.listen_port),),
        event_socket_host=esl.event_socket.host,
        event_socket_port=esl.event_socket.port,
        event_socket_password=password,
        prompts_dir=esl.prompts_dir,
        say_sounds=say,
        agent_socket=agent_socket,
        flow_entries=config.flows.entry_points,
        queues=tuple(config.flows.queues.values()),
    )


def _agent_socket(config: Config, problems: list[str]) -> tuple[str, int] | None:
    """Where secure-trunk (agent-mode) calls go, if `services.agent_api` is configured.

    Read through the agent feature's own settings loader, so both agree on defaults."""
    if not Reader(config.raw, "", []).section("services").has("agent_api"):
        return None
    import os

    from payivr.agent.settings import load_agent_settings
    from payivr.core.config import ConfigError

    try:
        agent, _tokens = load_agent_settings(config, os.environ)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None
    return (_ip_literal(agent.esl_listen_host) or "127.0.0.1", agent.esl_listen_port)
