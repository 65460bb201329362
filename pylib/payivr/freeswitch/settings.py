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
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from payivr.core.config import LANGUAGES, Config
from payivr.core.flow.settings import EntryPoint, QueueSettings

SRTP_MODES = ("optional", "mandatory", "forbidden")
LOG_LEVELS = ("info", "notice", "warning", "err")
# FreeSWITCH log level names from the least to the most severe kept in the log.
_LEVEL_ORDER = ("info", "notice", "warning", "err", "crit", "alert")
TLS_VERIFY_POLICIES = ("none", "in", "out", "all", "subjects_in", "subjects_out", "subjects_all")
_NODE = re.compile(
    r"^(?P<scheme>sips?):(?P<host>\[[^\]]+\]|[^:;@\s]+)(?::(?P<port>\d{1,5}))?"
    r"(?P<params>;\S*)?$"
)
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
    m = _NODE.match(uri.strip())
    if m is None:
        return None
    params = (m.group("params") or "").lower()
    tls = m.group("scheme") == "sips" or "transport=tls" in params
    port = int(m.group("port") or (5061 if tls else 5060))
    if not 0 < port < 65536:
        return None
    return SipNode(host=m.group("host").strip("[]"), port=port, tls=tls)


def _ip_literal(value: str) -> str | None:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    return None if ip.is_unspecified else str(ip)


def freeswitch_settings(config: Config, node_uri: str | None = None) -> FreeswitchSettings:
    """Derive and validate the FreeSWITCH settings for one node (default: the first)."""
    problems: list[str] = []
    services_raw = config.raw.get("services") if isinstance(config.raw, Mapping) else None
    raw = services_raw.get("freeswitch") if isinstance(services_raw, Mapping) else None
    fs: Mapping[str, object] = raw if isinstance(raw, Mapping) else {}
    where = "services.freeswitch"

    uri = node_uri or config.services.freeswitch_nodes[0]
    node = parse_node(uri)
    if node is None:
        problems.append(f"node {uri!r}: not a sip:/sips: URI with an IP and port")
        node = SipNode("127.0.0.1", 5080, False)
    if _ip_literal(node.host) is None:
        problems.append(f"node {uri!r}: FreeSWITCH binds an IP address; use one in the URI")

    srtp = str(fs.get("srtp", "optional"))
    if srtp not in SRTP_MODES:
        problems.append(f"{where}.srtp: one of {', '.join(SRTP_MODES)}")
    tls_raw = fs.get("tls", {})
    tls: Mapping[str, object] = tls_raw if isinstance(tls_raw, Mapping) else {}
    tls_enabled = bool(tls.get("enabled", False)) or node.tls
    tls_only = bool(tls.get("only", node.tls))
    tls_port = _int(
        tls.get("port", node.port if node.tls else 5081), f"{where}.tls.port", problems, 1, 65535
    )
    sip_port = (
        node.port
        if not node.tls
        else _int(fs.get("sip_port", 5080), f"{where}.sip_port", problems, 1, 65535)
    )
    verify = str(tls.get("verify_policy", "none"))
    if verify not in TLS_VERIFY_POLICIES:
        problems.append(f"{where}.tls.verify_policy: one of {', '.join(TLS_VERIFY_POLICIES)}")

    ports_raw = fs.get("rtp_ports", [16384, 32768])
    rtp_ports = (16384, 32768)
    if (
        isinstance(ports_raw, list)
        and len(ports_raw) == 2
        and all(isinstance(p, int) for p in ports_raw)
        and 1024 <= ports_raw[0] < ports_raw[1] <= 65535
    ):
        rtp_ports = (int(ports_raw[0]), int(ports_raw[1]))
    else:
        problems.append(f"{where}.rtp_ports: [first, last] with 1024 <= first < last <= 65535")

    log_level = str(fs.get("log_level", "notice"))
    if log_level not in LOG_LEVELS:
        problems.append(
            f"{where}.log_level: one of {', '.join(LOG_LEVELS)} "
            "(debug levels can show collected input)"
        )

    kam = config.services.kamailio
    declared = fs.get("kamailio_addresses")
    if isinstance(declared, list) and declared:
        candidates = [str(a) for a in declared]
        for i, a in enumerate(candidates):
            if _ip_literal(a) is None:
                problems.append(f"{where}.kamailio_addresses[{i}]: not an IP address")
    else:
        candidates = [li.host for li in kam.listen] + [kam.advertise_host]
        if kam.tls.enabled:
            candidates.append(kam.tls.host)
    addresses = tuple(dict.fromkeys(a for a in map(_ip_literal, candidates) if a))
    if not addresses:
        problems.append(
            f"{where}.kamailio_addresses: Kamailio listens on no IP literal; "
            "list the addresses its relayed calls come from"
        )

    esl = config.services.esl
    esl_host = _ip_literal(esl.listen_host) or "127.0.0.1"
    password = esl.event_socket.password.value() if esl.event_socket.password else ""
    if not password or password == DEFAULT_PASSWORD:
        problems.append(
            "services.esl.event_socket.password: set a non-default password (env:/file: reference)"
        )

    say_raw = fs.get("say_sounds", {})
    say: dict[str, str] = {lang: str(esl.prompts_dir / lang) for lang in LANGUAGES}
    if isinstance(say_raw, Mapping):
        for lang, prefix in say_raw.items():
            if lang not in LANGUAGES:
                problems.append(f"{where}.say_sounds.{lang}: unknown language")
            else:
                say[str(lang)] = str(prefix)

    max_sessions = _int(fs.get("max_sessions", 1000), f"{where}.max_sessions", problems, 1, 100000)
    sessions_per_second = _int(
        fs.get("sessions_per_second", 100), f"{where}.sessions_per_second", problems, 1, 10000
    )
    agent_socket = _agent_socket(config, problems)
    if problems:
        raise FreeswitchConfigError(problems)
    return FreeswitchSettings(
        node=node,
        sip_port=sip_port,
        rtp_ip=str(fs.get("rtp_ip", node.host)),
        srtp=srtp,
        tls_enabled=tls_enabled,
        tls_only=tls_only,
        tls_port=tls_port,
        tls_cert_dir=str(tls.get("cert_dir", "/etc/freeswitch/tls")),
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
    services = config.raw.get("services") if isinstance(config.raw, Mapping) else None
    if not isinstance(services, Mapping) or "agent_api" not in services:
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


def _int(value: object, path: str, problems: list[str], low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(f"{path}: an integer from {low} to {high}")
        return low
    return value
