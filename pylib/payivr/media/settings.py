"""rtpengine settings: `services.rtpengine` of the payivr config.

```yaml
services:
  rtpengine:
    ng_host: 127.0.0.1        # rtpengine's ng control socket (Kamailio and payivr use it)
    ng_port: 2223
    interface: 127.0.0.1      # the address rtpengine relays media on
    port_min: 30000
    port_max: 39999
    dtmf_security: silence    # what replaces a card tone towards the agent: silence | tone
    delay_buffer_ms: 60       # >= 40: the time rtpengine holds audio to cut a tone out
    log_level: 5              # syslog level; at most 6 (info): 7 logs each DTMF digit
```

The daemon's command line comes from daemon_args(), for the Ansible role and the tests
alike. Facts these limits rest on (rtpengine 10.5.3.5, pinned in
tests/integration/rtpengine): without a delay buffer in-band tones pass and blocked
RFC 4733 events come out as audible tones; `random` with a delay buffer crashes 10.5;
`zero` sends in-band digits on as RFC 4733 events carrying the real digit. Only
`silence` and `tone` are accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from payivr.core.config import Config, ConfigError, is_host_name
from payivr.core.configread import Reader

DTMF_SECURITY_MODES = ("silence", "tone")
MIN_DELAY_BUFFER_MS = 40  # below this rtpengine lets in-band tone energy through
MAX_DELAY_BUFFER_MS = 500
# rtpengine logs DTMF events with their digit at LOG_INFO in its dtmf subsystem's
# default facility only when DTMF logging is configured, and at LOG_DEBUG always.
MAX_LOG_LEVEL = 6


@dataclass(frozen=True)
class RtpengineSettings:
    ng_host: str = "127.0.0.1"
    ng_port: int = 2223
    interface: str = "127.0.0.1"
    port_min: int = 30000
    port_max: int = 39999
    dtmf_security: str = "silence"
    delay_buffer_ms: int = 60
    log_level: int = 5


def daemon_args(s: RtpengineSettings) -> list[str]:
    """rtpengine's options: userspace only, no DTMF logging of any kind."""
    return [
        f"--interface={s.interface}",
        f"--listen-ng={s.ng_host}:{s.ng_port}",
        f"--port-min={s.port_min}",
        f"--port-max={s.port_max}",
        "--table=-1",
        f"--log-level={s.log_level}",
        "--no-log-timestamps",
    ]


def load_rtpengine_settings(config: Config) -> RtpengineSettings | None:
    """`services.rtpengine`, or None when the section is absent (no media proxy)."""
    problems: list[str] = []
    raw: Any = config.raw
    services = Reader(raw, "", problems).section("services")
    if not isinstance(raw, Mapping) or not services.has("rtpengine"):
        return None
    s = services.section("rtpengine")
    settings = RtpengineSettings(
        ng_host=s.get("ng_host", str, "127.0.0.1", check=is_host_name, what="a host"),
        ng_port=s.port("ng_port", 2223),
        interface=s.get("interface", str, "127.0.0.1", check=is_host_name, what="a host"),
        port_min=s.port("port_min", 30000),
        port_max=s.port("port_max", 39999),
        dtmf_security=s.choice("dtmf_security", DTMF_SECURITY_MODES, "silence"),
        delay_buffer_ms=s.positive_int("delay_buffer_ms", 60),
        log_level=s.positive_int("log_level", 5),
    )
    if settings.port_max <= settings.port_min:
        s.problem("port_max", "must be above port_min")
    if not MIN_DELAY_BUFFER_MS <= settings.delay_buffer_ms <= MAX_DELAY_BUFFER_MS:
        s.problem(
            "delay_buffer_ms",
            f"between {MIN_DELAY_BUFFER_MS} and {MAX_DELAY_BUFFER_MS}: below "
            f"{MIN_DELAY_BUFFER_MS} ms rtpengine cannot cut in-band tones out",
        )
    if settings.log_level > MAX_LOG_LEVEL:
        s.problem("log_level", f"at most {MAX_LOG_LEVEL}: at debug rtpengine logs every DTMF digit")
    s.reject_unknown(
        {
            "ng_host",
            "ng_port",
            "interface",
            "port_min",
            "port_max",
            "dtmf_security",
            "delay_buffer_ms",
            "log_level",
        }
    )
    if problems:
        raise ConfigError(problems)
    return settings
