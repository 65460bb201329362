"""ESL settings that are not (yet) in payivr.core.config.EslConfig.

Read from `services.esl` of the same YAML file (that section accepts extra keys):

```yaml
services:
  esl:
    linger_s: 10              # how long FreeSWITCH keeps the socket after a hang-up
    recordings_dir: /var/lib/payivr/recordings   # IVR-leg recordings (record_ivr_leg)
    processor_threads: 64     # concurrent processor calls per process
    return:
      use_refer: true         # REFER (deflect) where the contact center accepts it
      sofia_profile: payivr   # profile for bridged returns
      proxy: sip:127.0.0.1:5060   # Kamailio: bridged returns go through it (fs_path)
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from payivr.core.config import Config
from payivr.esl.returning import ReturnSettings

# The keys of `services.esl`: the core's (payivr.core.config.EslConfig) and the ones
# read here; `payivr check-config` reports any other (payivr.feature_checks).
CORE_KEYS = frozenset({"listen_host", "listen_port", "event_socket", "prompts_dir"})
OPTION_KEYS = frozenset({"linger_s", "recordings_dir", "processor_threads", "return"})
RETURN_KEYS = frozenset({"use_refer", "sofia_profile", "proxy"})
EVENT_SOCKET_KEYS = frozenset({"host", "port", "password"})


@dataclass(frozen=True)
class EslOptions:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8084
    prompts_dir: Path = Path("var/prompts")
    linger_s: int = 10
    recordings_dir: Path = Path("/var/lib/payivr/recordings")
    processor_threads: int = 64
    returns: ReturnSettings = field(default_factory=ReturnSettings)


class OptionsError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _section(raw: Mapping[str, object], *path: str) -> Mapping[str, object]:
    node: object = raw
    for key in path:
        node = node.get(key, {}) if isinstance(node, Mapping) else {}
    return node if isinstance(node, Mapping) else {}


def esl_options(config: Config) -> EslOptions:
    """Build the options from a loaded Config; every problem reported at once."""
    esl = _section(config.raw, "services", "esl")
    ret = _section(esl, "return")
    problems: list[str] = []

    def integer(node: Mapping[str, object], key: str, default: int, where: str) -> int:
        value = node.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append(f"services.esl.{where}{key}: must be a non-negative integer")
            return default
        return value

    def text(node: Mapping[str, object], key: str, default: str | None, where: str) -> str | None:
        value = node.get(key, default)
        if value is not None and not isinstance(value, str):
            problems.append(f"services.esl.{where}{key}: must be a string")
            return default
        return value

    use_refer = ret.get("use_refer", True)
    if not isinstance(use_refer, bool):
        problems.append("services.esl.return.use_refer: must be true or false")
        use_refer = True
    proxy = text(ret, "proxy", None, "return.")
    if proxy is not None and not proxy.startswith(("sip:", "sips:")):
        problems.append("services.esl.return.proxy: must be a sip: or sips: URI")
    returns = ReturnSettings(
        use_refer=use_refer,
        sofia_profile=text(ret, "sofia_profile", "payivr", "return.") or "payivr",
        proxy=proxy,
    )
    base = config.path.parent if config.path else Path(".")
    recordings = text(esl, "recordings_dir", "/var/lib/payivr/recordings", "") or "."
    options = EslOptions(
        listen_host=config.services.esl.listen_host,
        listen_port=config.services.esl.listen_port,
        prompts_dir=config.services.esl.prompts_dir,
        linger_s=integer(esl, "linger_s", 10, ""),
        recordings_dir=(base / recordings).resolve(),
        processor_threads=max(1, integer(esl, "processor_threads", 64, "")),
        returns=returns,
    )
    if problems:
        raise OptionsError(problems)
    return options
