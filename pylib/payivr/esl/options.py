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

from dataclasses import dataclass, field
from pathlib import Path

from payivr.core.config import Config
from payivr.core.configread import Reader
from payivr.esl.returning import ReturnSettings

# The keys of `services.esl`: the core's (payivr.core.config.EslConfig) and the ones
# read here; any other is reported by `esl_options` (and so by `payivr check-config`).
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


def esl_options(config: Config) -> EslOptions:
    """Build the options from a loaded Config; every problem reported at once, each
    with its path, unknown keys of `services.esl` included."""
    problems: list[str] = []
    esl = Reader(config.raw, "", problems).at("services.esl")
    ret = esl.section("return")
    proxy = ret.get(
        "proxy",
        str,
        None,
        check=lambda v: v is not None and v.startswith(("sip:", "sips:")),
        what="a sip: or sips: URI",
    )
    returns = ReturnSettings(
        use_refer=ret.get("use_refer", bool, True),
        sofia_profile=ret.get("sofia_profile", str, "payivr") or "payivr",
        proxy=proxy,
    )
    base = config.path.parent if config.path else Path(".")
    recordings = esl.get("recordings_dir", str, "/var/lib/payivr/recordings") or "."
    options = EslOptions(
        listen_host=config.services.esl.listen_host,
        listen_port=config.services.esl.listen_port,
        prompts_dir=config.services.esl.prompts_dir,
        linger_s=esl.non_negative_int("linger_s", 10),
        recordings_dir=(base / recordings).resolve(),
        processor_threads=max(1, esl.non_negative_int("processor_threads", 64)),
        returns=returns,
    )
    esl.reject_unknown(CORE_KEYS | OPTION_KEYS)
    ret.reject_unknown(RETURN_KEYS)
    esl.section("event_socket").reject_unknown(EVENT_SOCKET_KEYS)
    if problems:
        raise OptionsError(problems)
    return options
