"""The stack's own config: the given payivr config with every service on loopback.

`stack up` never touches the ports a config names (a developer may run the real
thing there): it copies the config into the workdir with free 127.0.0.1 ports for
Redis, Kamailio, the FreeSWITCH node, the ESL application, the event socket and the
worker's metrics, and absolute paths for the secrets file and the prompts.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from payivr.core.config import Config, load_config
from payivr.stack.ports import free_ports

PORT_NAMES = ("redis", "kamailio", "freeswitch", "esl", "event_socket", "metrics")


@dataclass(frozen=True)
class StackLayout:
    """Where everything of one local stack lives."""

    workdir: Path
    config_path: Path
    ports: dict[str, int]

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['redis']}/0"

    def load(self) -> Config:
        return load_config(self.config_path)


def _section(data: dict[str, Any], *path: str) -> dict[str, Any]:
    node = data
    for key in path:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    return node


def loopback_config(base: Config, workdir: Path, ports: dict[str, int]) -> dict[str, Any]:
    """The base config's document with loopback ports and absolute paths."""
    data: dict[str, Any] = copy.deepcopy(dict(base.raw))
    base_dir = base.path.parent.resolve()
    if data.get("secrets_file"):
        data["secrets_file"] = str((base_dir / str(data["secrets_file"])).resolve())
    services = _section(data, "services")
    redis = _section(services, "redis")
    redis["url"] = f"redis://127.0.0.1:{ports['redis']}/0"
    redis.pop("sentinel", None)
    redis["password"] = ""
    kam = _section(services, "kamailio")
    kam["advertise_host"] = "127.0.0.1"
    kam["listen"] = [
        {"proto": "udp", "host": "127.0.0.1", "port": ports["kamailio"]},
        {"proto": "tcp", "host": "127.0.0.1", "port": ports["kamailio"]},
    ]
    _section(kam, "tls")["enabled"] = False
    services["freeswitch_nodes"] = [f"sip:127.0.0.1:{ports['freeswitch']}"]
    esl = _section(services, "esl")
    esl["listen_host"] = "127.0.0.1"
    esl["listen_port"] = ports["esl"]
    event_socket = _section(esl, "event_socket")
    event_socket["host"] = "127.0.0.1"
    event_socket["port"] = ports["event_socket"]
    esl["prompts_dir"] = str(base.services.esl.prompts_dir)
    # The ESL application's settings (services.esl): recordings of
    # the IVR leg stay in the workdir, and bridged returns go through this Kamailio.
    esl["recordings_dir"] = str(workdir.resolve() / "recordings")
    _section(esl, "return")["proxy"] = f"sip:127.0.0.1:{ports['kamailio']}"
    _section(services, "callbacks")["metrics_port"] = ports["metrics"]
    return data


def prepare(base_config: Path, workdir: Path) -> StackLayout:
    """Choose ports, write `<workdir>/payivr.yaml`, validate it (ConfigError if bad)."""
    base = load_config(base_config)
    workdir.mkdir(parents=True, exist_ok=True)
    ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
    path = workdir / "payivr.yaml"
    text = yaml.safe_dump(loopback_config(base, workdir, ports), sort_keys=False)
    path.write_text(
        "# Written by `payivr stack up` from "
        + str(base_config.resolve())
        + ": loopback ports for this local stack.\n"
        + text
    )
    layout = StackLayout(workdir=workdir.resolve(), config_path=path.resolve(), ports=ports)
    layout.load()  # the copy must be as valid as the original
    return layout
