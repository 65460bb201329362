"""Render payivr's FreeSWITCH configuration tree from the templates and a Config.

The templates live in the repository's `freeswitch/conf/` and `dialplans/` folders
(the product's layout); `{{name}}` placeholders are filled here. The result is a
complete, minimal FreeSWITCH configuration directory: it replaces the vanilla
/etc/freeswitch on a payivr node, or is passed to `freeswitch -conf DIR` in tests.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from payivr.core.config import LANGUAGES
from payivr.core.config_types import MODERN_CIPHERS
from payivr.freeswitch.flows import fifo_queues, flow_extension, insert_flow_extension
from payivr.freeswitch.settings import FreeswitchSettings

# Loaded in this order: loggers, event socket, SIP, applications, dialplan, formats, say.
MODULES: tuple[str, ...] = (
    "mod_console",
    "mod_logfile",
    "mod_event_socket",
    "mod_sofia",
    "mod_commands",
    "mod_dptools",
    "mod_dialplan_xml",
    "mod_sndfile",
    "mod_native_file",
    "mod_tone_stream",
    "mod_fifo",
    "mod_say_en",
    "mod_say_es",
    "mod_say_pt",
    "mod_say_nl",
)
# Modules that write call detail records: every channel variable can end up in them.
CDR_MODULES: tuple[str, ...] = (
    "mod_cdr_csv",
    "mod_cdr_pg_csv",
    "mod_cdr_sqlite",
    "mod_cdr_mongodb",
    "mod_json_cdr",
    "mod_xml_cdr",
    "mod_format_cdr",
    "mod_odbc_cdr",
    "mod_radius_cdr",
)
MANAGED = "Rendered by `payivr freeswitch render`: edit the template, not this file."
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
# Template file (relative to the share dir) -> path in the rendered tree.
_TREE: tuple[tuple[str, str], ...] = (
    ("freeswitch/conf/freeswitch.xml", "freeswitch.xml"),
    ("freeswitch/conf/vars.xml", "vars.xml"),
    ("freeswitch/conf/autoload_configs/modules.conf.xml", "autoload_configs/modules.conf.xml"),
    ("freeswitch/conf/autoload_configs/switch.conf.xml", "autoload_configs/switch.conf.xml"),
    ("freeswitch/conf/autoload_configs/console.conf.xml", "autoload_configs/console.conf.xml"),
    ("freeswitch/conf/autoload_configs/logfile.conf.xml", "autoload_configs/logfile.conf.xml"),
    (
        "freeswitch/conf/autoload_configs/event_socket.conf.xml",
        "autoload_configs/event_socket.conf.xml",
    ),
    ("freeswitch/conf/autoload_configs/acl.conf.xml", "autoload_configs/acl.conf.xml"),
    ("freeswitch/conf/autoload_configs/sofia.conf.xml", "autoload_configs/sofia.conf.xml"),
    ("freeswitch/conf/autoload_configs/fifo.conf.xml", "autoload_configs/fifo.conf.xml"),
    ("freeswitch/conf/sip_profiles/payivr.xml", "sip_profiles/payivr.xml"),
    ("dialplans/payivr.xml", "dialplan/payivr.xml"),
)


class TemplateError(Exception):
    """A template names a value the renderer does not have (a bug, not a config error)."""


def share_dir() -> Path:
    """Where the templates are: $PAYIVR_SHARE_DIR, the source checkout, or <prefix>/share."""
    candidates = []
    if os.environ.get("PAYIVR_SHARE_DIR"):
        candidates.append(Path(os.environ["PAYIVR_SHARE_DIR"]))
    candidates.append(Path(__file__).resolve().parents[3])
    candidates.append(Path(sys.prefix) / "share" / "payivr")
    for c in candidates:
        if (c / "freeswitch" / "conf" / "freeswitch.xml").is_file():
            return c
    raise FileNotFoundError(
        "payivr's FreeSWITCH templates not found (set PAYIVR_SHARE_DIR to the folder "
        "holding freeswitch/ and dialplans/)"
    )


def fill(template: str, values: Mapping[str, str], name: str = "template") -> str:
    """Replace every {{key}}; a placeholder without a value is a TemplateError."""
    missing = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - set(values))
    if missing:
        raise TemplateError(f"{name}: no value for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _attr(value: object) -> str:
    """A value safe inside a double-quoted XML attribute (quoteattr adds the quotes)."""
    return quoteattr(str(value), {'"': "&quot;"})[1:-1]


def _addr_regex(addresses: tuple[str, ...]) -> str:
    return "^(" + "|".join(re.escape(a) for a in addresses) + ")$"


def _cidr(address: str) -> str:
    return f"{address}/128" if ":" in address else f"{address}/32"


def template_values(s: FreeswitchSettings) -> dict[str, str]:
    """Every placeholder's value, already escaped for where it appears (attributes)."""
    srtp = s.srtp
    values = {
        "managed": escape(MANAGED),
        "sip_ip": s.node.host,
        "sip_port": str(s.sip_port),
        "rtp_ip": s.rtp_ip,
        "prompts_dir": str(s.prompts_dir),
        "srtp_inbound": srtp,
        "srtp_outbound": srtp,
        "module_lines": "\n".join(f'    <load module="{m}"/>' for m in MODULES),
        "log_level": s.log_level,
        "log_levels": s.log_levels,
        "max_sessions": str(s.max_sessions),
        "sessions_per_second": str(s.sessions_per_second),
        "rtp_start_port": str(s.rtp_ports[0]),
        "rtp_end_port": str(s.rtp_ports[1]),
        "esl_host": s.event_socket_host,
        "esl_port": str(s.event_socket_port),
        "esl_password": s.event_socket_password,
        "kamailio_nodes": "\n".join(
            f'      <node type="allow" cidr="{_cidr(a)}"/>' for a in s.kamailio_addresses
        ),
        "esl_nodes": '      <node type="allow" cidr="127.0.0.1/32"/>\n'
        '      <node type="allow" cidr="::1/128"/>',
        "media_timeout_ms": "30000",
        "tls_enabled": "true" if s.tls_enabled else "false",
        "tls_only": "true" if s.tls_enabled and s.tls_only else "false",
        "tls_port": str(s.tls_port),
        "tls_cert_dir": s.tls_cert_dir,
        "tls_verify_policy": s.tls_verify_policy,
        "tls_ciphers": MODERN_CIPHERS,
        "kamailio_addr_regex": _addr_regex(s.kamailio_addresses),
        "esl_targets": "|".join(f"{h}:{p}" for h, p in s.esl_targets),
        "fifo_queues": fifo_queues(s.queues),
    }
    raw_blocks = {"managed", "module_lines", "kamailio_nodes", "esl_nodes", "fifo_queues"}
    return {k: (v if k in raw_blocks else _attr(v)) for k, v in values.items()}


def render_tree(s: FreeswitchSettings, share: Path | None = None) -> dict[str, str]:
    """The configuration tree as {relative path: file text}."""
    base = share or share_dir()
    values = template_values(s)
    tree = {}
    for src, dest in _TREE:
        tree[dest] = fill((base / src).read_text(encoding="utf-8"), values, src)
    if s.agent_socket is not None:
        # Agent-assisted mode: the secure-trunk extension goes before payivr-payment
        # (payivr.agent.dialplan owns its text; docs/agent-assisted.md).
        from payivr.agent.dialplan import insert_agent_extension

        host, port = s.agent_socket
        tree["dialplan/payivr.xml"] = insert_agent_extension(
            tree["dialplan/payivr.xml"], _addr_regex(s.kamailio_addresses), host, port
        )
    tree["dialplan/payivr.xml"] = insert_flow_extension(
        tree["dialplan/payivr.xml"],
        flow_extension(
            s.flow_entries,
            _addr_regex(s.kamailio_addresses),
            "|".join(f"{h}:{p}" for h, p in s.esl_targets),
        ),
    )
    language = (base / "freeswitch/conf/lang/language.xml").read_text(encoding="utf-8")
    for lang in LANGUAGES:
        lang_values = dict(
            values, lang=lang, say_module=lang, sound_prefix=_attr(s.say_sounds[lang])
        )
        tree[f"lang/{lang}.xml"] = fill(language, lang_values, "lang/language.xml")
    return tree


def write_tree(tree: Mapping[str, str], out: Path) -> list[Path]:
    """Write the tree under `out` (files replaced atomically, mode 0640: a password is in it)."""
    written = []
    for rel, text in sorted(tree.items()):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
        written.append(path)
    return written
