"""What Kamailio needs from a payivr Config, and the files generated from it.

`KamailioSettings.from_config` takes the `services.kamailio` section (sockets, TLS,
rate limits, FreeSWITCH nodes) plus a few operator knobs (children, timers), and the
render functions turn it into the three files Kamailio reads beside kamailio.cfg:

    payivr-local.cfg   defines and listen lines (included by kamailio.cfg)
    dispatcher.list    the FreeSWITCH nodes, one dispatcher set
    tls.cfg            the tls module's profiles (only when TLS is on)

Pure: no process is started here, nothing is read but what is passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from payivr.core.config import Config
from payivr.core.config_types import MODERN_CIPHERS
from payivr.media.settings import load_rtpengine_settings

DISPATCHER_SET = 1
LOCAL_CFG = "payivr-local.cfg"
DISPATCHER_LIST = "dispatcher.list"
TLS_CFG = "tls.cfg"
# The dialog module refuses a shorter keep-alive interval (dialog.c, mod_init).
MIN_DLG_KA_INTERVAL_S = 30
_SAFE_TEXT = re.compile(r'^[^"\\\r\n]*$')


@dataclass(frozen=True)
class Socket:
    """One Kamailio listen socket."""

    proto: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.proto}:{host}:{self.port}"

    @classmethod
    def parse(cls, proto: str, text: str) -> Socket:
        """`127.0.0.1:5060` (or `[::1]:5060`) for the given protocol."""
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
            raise ValueError(f"{text!r}: expected HOST:PORT")
        return cls(proto, host.strip("[]"), int(port))


@dataclass(frozen=True)
class KamailioSettings:
    """Everything the generated files carry. Defaults suit production on a small host."""

    config_path: Path
    kemi_script: Path
    runtime_dir: Path
    advertise_host: str
    listen: tuple[Socket, ...]
    freeswitch_nodes: tuple[str, ...]
    pike_density: int
    tls_certificate: str = ""
    tls_private_key: str = ""
    tls_ca_certificate: str = ""
    tls_mutual: bool = False
    tls_cipher_list: str = MODERN_CIPHERS
    pylib: Path | None = None
    modules_dir: str = "/usr/lib/x86_64-linux-gnu/kamailio/modules"
    # Each admitted INVITE holds its worker for the Redis round trip: 12 workers kept
    # payivr at the native route's rate on a loaded 2-core host where 4 reached half
    # (docs/kamailio.md, Benchmark results).
    children: int = 12
    tcp_children: int = 2
    fr_timer_ms: int = 2000
    fr_inv_timer_ms: int = 30000
    ds_ping_interval_s: int = 10
    dlg_ka_interval_s: int = 30
    """In-dialog OPTIONS toward the node of each call (a node dead mid-call: BYE).
    Kamailio's dialog module refuses less than 30 s."""
    log_level: int = 2
    ctl_socket: str = ""
    """binrpc socket for kamcmd; default: kamailio_ctl in runtime_dir."""
    rtpengine_sock: str = ""
    """rtpengine's ng socket (`udp:host:port`) when `services.rtpengine` is set."""
    extra_defines: dict[str, str] = field(default_factory=dict)
    metrics: Socket | None = None
    """Where xhttp_prom answers Prometheus (services.kamailio.metrics_port); None: off."""

    @property
    def tls_enabled(self) -> bool:
        return any(s.proto == "tls" for s in self.listen)

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        kemi_script: Path,
        runtime_dir: Path,
        listen: tuple[Socket, ...] | None = None,
        **knobs: object,
    ) -> KamailioSettings:
        """Settings from the config's `services` section; `listen` overrides its sockets."""
        kam = config.services.kamailio
        if listen is None:
            sockets = [Socket(li.proto, li.host, li.port) for li in kam.listen]
            if kam.tls.enabled:
                sockets.append(Socket("tls", kam.tls.host, kam.tls.port))
            listen = tuple(sockets)
        settings = cls(
            config_path=config.path.resolve(),
            kemi_script=kemi_script.resolve(),
            runtime_dir=runtime_dir.resolve(),
            advertise_host=kam.advertise_host,
            listen=listen,
            freeswitch_nodes=config.services.freeswitch_nodes,
            pike_density=kam.rate_limit.per_source_per_s,
            tls_certificate=kam.tls.certificate,
            tls_private_key=kam.tls.private_key,
            metrics=None
            if kam.metrics_port is None
            else Socket("tcp", config.services.metrics_host, kam.metrics_port),
            tls_ca_certificate=kam.tls.ca_certificate,
            tls_mutual=kam.tls.mutual,
            tls_cipher_list=kam.tls.cipher_list,
            rtpengine_sock=rtpengine_socket(config),
        )
        return replace(settings, **knobs)  # type: ignore[arg-type]


def rtpengine_socket(config: Config) -> str:
    """rtpengine's ng socket for the rtpengine module, or "" without `services.rtpengine`."""
    media = load_rtpengine_settings(config)
    if media is None:
        return ""
    host = f"[{media.ng_host}]" if ":" in media.ng_host else media.ng_host
    return f"udp:{host}:{media.ng_port}"


def _quoted(value: str | Path) -> str:
    text = str(value)
    if not _SAFE_TEXT.match(text):
        raise ValueError(f"{text!r}: quotes, backslashes and newlines cannot go into a define")
    return f'"{text}"'


def render_local_cfg(s: KamailioSettings) -> str:
    """payivr-local.cfg: the defines kamailio.cfg uses and the listen sockets."""
    if not s.listen:
        raise ValueError("at least one listen socket is needed")
    if s.dlg_ka_interval_s < MIN_DLG_KA_INTERVAL_S:
        raise ValueError(
            f"dlg_ka_interval_s: Kamailio's dialog module needs at least {MIN_DLG_KA_INTERVAL_S}"
        )
    defines: dict[str, str] = {
        "PAYIVR_CONFIG": _quoted(s.config_path),
        "PAYIVR_PYLIB": _quoted(s.pylib or ""),
        "PAYIVR_KEMI_SCRIPT": _quoted(s.kemi_script),
        "PAYIVR_MODULES_DIR": _quoted(s.modules_dir),
        "PAYIVR_DISPATCHER_LIST": _quoted(s.runtime_dir / DISPATCHER_LIST),
        "PAYIVR_DISPATCHER_SET": str(DISPATCHER_SET),
        "PAYIVR_CTL_SOCKET": _quoted(s.ctl_socket or f"unix:{s.runtime_dir / 'kamailio_ctl'}"),
        "PAYIVR_ADVERTISE_HOST": s.advertise_host,
        "PAYIVR_PING_FROM": _quoted(f"sip:payivr@{s.advertise_host}"),
        "PAYIVR_PIKE_DENSITY": str(s.pike_density),
        "PAYIVR_CHILDREN": str(s.children),
        "PAYIVR_TCP_CHILDREN": str(s.tcp_children),
        "PAYIVR_FR_TIMER_MS": str(s.fr_timer_ms),
        "PAYIVR_FR_INV_TIMER_MS": str(s.fr_inv_timer_ms),
        "PAYIVR_DS_PING_INTERVAL": str(s.ds_ping_interval_s),
        "PAYIVR_DLG_KA_INTERVAL": str(s.dlg_ka_interval_s),
        "PAYIVR_LOG_LEVEL": str(s.log_level),
    }
    if s.tls_enabled:
        defines["PAYIVR_WITH_TLS"] = ""
        defines["PAYIVR_TLS_CONFIG"] = _quoted(s.runtime_dir / TLS_CFG)
    if s.metrics is not None:
        defines["PAYIVR_WITH_METRICS"] = "1"
    if s.rtpengine_sock:
        defines["PAYIVR_WITH_RTPENGINE"] = ""
        defines["PAYIVR_RTPENGINE_SOCK"] = _quoted(s.rtpengine_sock)
    defines.update(s.extra_defines)
    lines = [
        "# Generated by payivr from " + str(s.config_path) + ". Do not edit:",
        "# change the payivr config and run `payivr kamailio defines` again.",
    ]
    for name, value in defines.items():
        lines.append(f"#!define {name} {value}".rstrip())
    for sock in s.listen:
        lines.append(f"listen={sock}")
    if s.metrics is not None:
        lines.append(f"listen={s.metrics}")
    # The advertised name (Warning headers; how CTI trunks may address us) is this
    # proxy on its own ports only, never a whole host: on a shared host a bare alias
    # would make a FreeSWITCH node's Contact look local and loop in-dialog requests.
    host = f"[{s.advertise_host}]" if ":" in s.advertise_host else s.advertise_host
    for port in sorted({sock.port for sock in s.listen}):
        lines.append(f"alias={host}:{port}")
    return "\n".join(lines) + "\n"


def render_dispatcher_list(s: KamailioSettings) -> str:
    """dispatcher.list: set 1 holds every FreeSWITCH node, in config order.

    Priorities fall in config order, so an operator who wants a primary node lists it
    first; the route picks round-robin among the active ones.
    """
    lines = ["# setid destination flags priority attributes (generated by payivr)"]
    count = len(s.freeswitch_nodes)
    for i, node in enumerate(s.freeswitch_nodes):
        if any(c.isspace() for c in node):
            raise ValueError(f"{node!r}: a FreeSWITCH node URI has no spaces")
        lines.append(f"{DISPATCHER_SET} {node} 0 {count - i} node={i}")
    return "\n".join(lines) + "\n"


def render_tls_cfg(s: KamailioSettings) -> str:
    """tls.cfg: TLS 1.2 or newer with forward-secret AEAD suites, both directions.

    Server side (CTI trunks connecting to us): our certificate; with `mutual` a client
    certificate is required and verified against `ca_certificate`, otherwise the
    trunk is authenticated by its source address and the request signature.
    Client side (us connecting to a FreeSWITCH node over TLS): the node's certificate
    is always verified, against `ca_certificate` when given (else the system store),
    and ours is presented so a node with `verify_policy: in` can verify Kamailio.
    """
    if not (s.tls_certificate and s.tls_private_key):
        raise ValueError("TLS is on: certificate and private_key are required")
    if s.tls_mutual and not s.tls_ca_certificate:
        raise ValueError("mutual TLS needs ca_certificate")
    for value in (s.tls_certificate, s.tls_private_key, s.tls_ca_certificate, s.tls_cipher_list):
        if not _SAFE_TEXT.match(value):
            raise ValueError(f"{value!r}: newlines, quotes and backslashes cannot go into tls.cfg")
    ca = f"ca_list = {s.tls_ca_certificate}\n" if s.tls_ca_certificate else ""
    mutual = "yes" if s.tls_mutual else "no"
    common = (
        "method = TLSv1.2+\n"
        f"cipher_list = {s.tls_cipher_list}\n"
        f"certificate = {s.tls_certificate}\n"
        f"private_key = {s.tls_private_key}\n"
        f"{ca}"
    )
    return (
        "# Generated by payivr. Do not edit.\n"
        "[server:default]\n"
        f"{common}"
        f"verify_certificate = {mutual}\n"
        f"require_certificate = {mutual}\n"
        "\n"
        "[client:default]\n"
        f"{common}"
        "verify_certificate = yes\n"
        "require_certificate = yes\n"
    )


def write_files(s: KamailioSettings, directory: Path) -> list[Path]:
    """Write the generated files into `directory`; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {LOCAL_CFG: render_local_cfg(s), DISPATCHER_LIST: render_dispatcher_list(s)}
    if s.tls_enabled:
        files[TLS_CFG] = render_tls_cfg(s)
    written = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
