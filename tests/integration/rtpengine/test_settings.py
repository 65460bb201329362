"""`services.rtpengine`: validated like the rest of the config; the daemon's options and
Kamailio's defines come from it. bencode as the ng protocol uses it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from payivr.core.config import ConfigError, parse_config
from payivr.kamailio.settings import KamailioSettings, render_local_cfg
from payivr.media import bencode
from payivr.media.masking import UNBLOCK_PARAMS, block_params
from payivr.media.ng import NgClient
from payivr.media.sdp import ANSWER_FLAGS, OFFER_FLAGS, kamailio_flags
from payivr.media.settings import daemon_args, load_rtpengine_settings
from tests.support.servers import free_port, stop_process

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config" / "payivr.example.yaml"


def config_with(tmp_path: Path, rtpengine: object) -> Any:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["secrets_file"] = str(EXAMPLE.parent / "secrets.example.yaml")
    if rtpengine is not None:
        data["services"]["rtpengine"] = rtpengine
    return parse_config(data, base_dir=EXAMPLE.parent, path=tmp_path / "payivr.yaml")


def test_defaults_and_daemon_options(tmp_path: Path) -> None:
    settings = load_rtpengine_settings(config_with(tmp_path, {}))
    assert settings is not None
    assert (settings.dtmf_security, settings.delay_buffer_ms, settings.log_level) == (
        "silence",
        60,
        5,
    )
    args = daemon_args(settings)
    assert "--table=-1" in args and "--log-level=5" in args
    # Nothing that turns DTMF logging on (rtpengine logs digits to these).
    assert not [a for a in args if "dtmf" in a.lower()]
    assert block_params(settings) == {
        "DTMF-security": "silence", "flags": ["detect-DTMF"], "delay-buffer": 60
    }  # fmt: skip
    assert UNBLOCK_PARAMS == {"delay-buffer": 0}
    assert load_rtpengine_settings(config_with(tmp_path, None)) is None


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"dtmf_security": "random"}, "dtmf_security"),  # crashes 10.5 with a delay buffer
        ({"dtmf_security": "zero"}, "dtmf_security"),  # leaks in-band digits as events
        ({"dtmf_security": "off"}, "dtmf_security"),
        ({"delay_buffer_ms": 20}, "delay_buffer_ms"),  # tones pass below 40 ms
        ({"log_level": 7}, "log_level"),  # debug logs each DTMF digit
        ({"port_min": 40000, "port_max": 30000}, "port_max"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_refused_settings(tmp_path: Path, section: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_rtpengine_settings(config_with(tmp_path, section))


def test_kamailio_defines_load_the_module_only_with_rtpengine(tmp_path: Path) -> None:
    def local_cfg(rtpengine: object) -> str:
        return render_local_cfg(
            KamailioSettings.from_config(
                config_with(tmp_path, rtpengine),
                kemi_script=tmp_path / "k.py",
                runtime_dir=tmp_path,
            )
        )

    with_media = local_cfg({"ng_host": "127.0.0.1", "ng_port": 2223})
    assert "#!define PAYIVR_WITH_RTPENGINE" in with_media
    assert '#!define PAYIVR_RTPENGINE_SOCK "udp:127.0.0.1:2223"' in with_media
    assert "RTPENGINE" not in local_cfg(None)
    assert kamailio_flags(OFFER_FLAGS) == "label=payivr-fs replace-origin"
    assert kamailio_flags(ANSWER_FLAGS) == "label=payivr-agent replace-origin"


def test_bencode_round_trip_and_errors() -> None:
    value = {"command": "block DTMF", "flags": ["detect-DTMF"], "delay-buffer": 60}
    encoded = bencode.encode(value)
    assert encoded == b"d7:command10:block DTMF12:delay-bufferi60e5:flagsl11:detect-DTMFee"
    assert bencode.decode(encoded) == {
        "command": b"block DTMF", "flags": [b"detect-DTMF"], "delay-buffer": 60
    }  # fmt: skip
    for bad in (b"d3:abc", b"i1ex", b"x", b"5:ab"):
        with pytest.raises(ValueError):
            bencode.decode(bad)


def test_the_ansible_renderer_writes_a_conf_rtpengine_runs(tmp_path: Path) -> None:
    """ansible/roles/rtpengine renders rtpengine.conf with payivr.media.settings; the
    real daemon starts from it and answers a ping on the configured ng port."""
    script = REPO / "ansible" / "roles" / "rtpengine" / "files" / "payivr_rtpengine_conf.py"
    port = free_port(socket.SOCK_DGRAM)
    data = yaml.safe_load(EXAMPLE.read_text())
    data["secrets_file"] = str(EXAMPLE.parent / "secrets.example.yaml")
    config_path = tmp_path / "payivr.yaml"
    config_path.write_text(yaml.safe_dump(data))
    out = tmp_path / "rtpengine.conf"
    run = [sys.executable, str(script), str(config_path), str(out)]
    assert subprocess.run(run, capture_output=True, text=True, check=True).stdout == "absent\n"
    data["services"]["rtpengine"] = {"ng_port": port, "port_min": 31000, "port_max": 31099}
    config_path.write_text(yaml.safe_dump(data))
    assert subprocess.run(run, capture_output=True, text=True, check=True).stdout == "rendered\n"
    conf = out.read_text()
    assert "table = -1" in conf and "dtmf" not in conf.lower()
    proc = subprocess.Popen(["rtpengine", f"--config-file={out}", "--foreground"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        client = NgClient("127.0.0.1", port, timeout_s=0.5, tries=10)
        assert asyncio.run(client.request("ping")) == {"result": b"pong"}
    finally:
        stop_process(proc)
