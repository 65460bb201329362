"""Agent-assisted mode settings: `services.agent_api` and `merchants.<id>.agent_api`.

The core config loader accepts these sections without typing them (they belong to
this feature); this module reads them from ``Config.raw`` with the same reader and
secret references as the rest of the config, and reports every problem at once
with its path, before any socket opens.

```yaml
services:
  agent_api:
    listen_host: 127.0.0.1      # the HTTP API and the agent panel
    listen_port: 8090
    esl_listen_host: 127.0.0.1  # outbound socket for secure-trunk (agent-mode) calls
    esl_listen_port: 8085
    dtmf_mask: tones            # per caller key the agent gets: tones | silence | file
    mask_digit: "0"             # the flat tone sent instead of each key (tones)
    mask_file: ""               # a sound file instead of each key (file)
    mute_caller_audio: true     # mute caller->agent audio while capturing (in-band DTMF)
    live_digit_count: false     # per-key progress on the panel
    result_info: true           # send the result to the agent leg as a SIP INFO
    call_ttl_s: 14400
    require_session: true       # the call must carry Kamailio's X-Payivr-Session
merchants:
  acme:
    agent_api:
      token: "file:acme_agent_token"
      caller_prompts: spoken    # spoken | agent-guided (the caller hears no prompt)
```
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from payivr.core.config import Config, ConfigError, is_host_name
from payivr.core.configread import Reader, Secret, SecretResolver

DTMF_MASKS = ("tones", "silence", "file")
CALLER_PROMPTS = ("spoken", "agent-guided")
MIN_TOKEN_LENGTH = 24  # bearer tokens shorter than this are guessable
# A uuid_drop_dtmf mask that sends nothing ("-" is no DTMF key): see drop_dtmf_args.
NO_MASK = "mask_digits -"


@dataclass(frozen=True)
class AgentSettings:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8090
    esl_listen_host: str = "127.0.0.1"
    esl_listen_port: int = 8085
    metrics_port: int = 9466  # Prometheus, on services.metrics_host (docs/monitoring.md)
    dtmf_mask: str = "tones"
    mask_digit: str = "0"
    mask_file: str = ""
    mute_caller_audio: bool = True
    # The panel's "7 digits so far" (else each field's count when it is complete).
    # Either way the keys reach only this service (payivr.agent.keys), sensitive_dtmf
    # stays on for the payment, and FreeSWITCH logs no key.
    live_digit_count: bool = False
    result_info: bool = True
    call_ttl_s: int = 14400
    require_session: bool = True
    # Merchants whose callers hear no prompt during a payment (agent-guided style).
    guided_merchants: frozenset[str] = frozenset()

    def drop_dtmf_args(self) -> str:
        """The tail of `uuid_drop_dtmf <uuid> on ...` for the configured mask.

        FreeSWITCH 1.10's uuid_drop_dtmf answers -USAGE to fewer than four arguments
        (mod_commands.c: `argc < 4`), so even plain dropping names a mask: one made of
        a character that is no DTMF key, which FreeSWITCH skips (switch_core_io.c
        sends only `is_dtmf` characters): the key is dropped and nothing sent.
        """
        if self.dtmf_mask == "tones":
            return f"on mask_digits {self.mask_digit}"
        if self.dtmf_mask == "file":
            return f"on mask_file {self.mask_file}"
        return f"on {NO_MASK}"

    def drop_dtmf_off_args(self) -> str:
        """The tail of `uuid_drop_dtmf <uuid> off ...` (four arguments, as above)."""
        return f"off {NO_MASK}"


class MerchantTokens:
    """Bearer tokens per merchant; lookup compares in constant time."""

    def __init__(self, tokens: Mapping[str, Secret]) -> None:
        self._tokens = dict(tokens)

    def merchant_for(self, presented: str) -> str | None:
        """The merchant whose token this is, or None. Every token is compared."""
        found: str | None = None
        given = presented.encode("utf-8")
        for merchant, secret in self._tokens.items():
            if hmac.compare_digest(given, secret.encode()) and found is None:
                found = merchant
        return found

    def __len__(self) -> int:
        return len(self._tokens)

    def __repr__(self) -> str:
        return f"<MerchantTokens merchants={sorted(self._tokens)}>"


def load_agent_settings(
    config: Config, environ: Mapping[str, str]
) -> tuple[AgentSettings, MerchantTokens]:
    """Read the agent sections of an already-validated config; ConfigError if bad."""
    problems: list[str] = []
    raw: Any = config.raw
    root = Reader(raw, "", problems)
    services = root.section("services")
    s = services.section("agent_api")
    settings = AgentSettings(
        listen_host=s.get("listen_host", str, "127.0.0.1", check=is_host_name, what="a host"),
        listen_port=s.port("listen_port", 8090),
        esl_listen_host=s.get(
            "esl_listen_host", str, "127.0.0.1", check=is_host_name, what="a host"
        ),
        esl_listen_port=s.port("esl_listen_port", 8085),
        metrics_port=s.port("metrics_port", 9466),
        dtmf_mask=s.choice("dtmf_mask", DTMF_MASKS, "tones"),
        mask_digit=s.get(
            "mask_digit",
            str,
            "0",
            check=lambda v: len(v) == 1 and v in "0123456789ABCD#*",
            what="one DTMF key",
        ),
        mask_file=s.get("mask_file", str, ""),
        mute_caller_audio=s.get("mute_caller_audio", bool, True),
        live_digit_count=s.get("live_digit_count", bool, False),
        result_info=s.get("result_info", bool, True),
        call_ttl_s=s.positive_int("call_ttl_s", 14400),
        require_session=s.get("require_session", bool, True),
    )
    if settings.dtmf_mask == "file" and not settings.mask_file:
        s.problem("mask_file", "required when dtmf_mask is file")
    s.reject_unknown(
        {
            "listen_host",
            "listen_port",
            "esl_listen_host",
            "esl_listen_port",
            "metrics_port",
            "dtmf_mask",
            "mask_digit",
            "mask_file",
            "mute_caller_audio",
            "live_digit_count",
            "result_info",
            "call_ttl_s",
            "require_session",
        }
    )
    secrets_file = root.get("secrets_file", str, None)
    resolver = SecretResolver(secrets_file, config.path.parent, environ, problems)
    tokens: dict[str, Secret] = {}
    guided: set[str] = set()
    merchants = root.section("merchants")
    for merchant_id in merchants.keys():  # noqa: SIM118 (a Reader)
        m = merchants.section(merchant_id)
        if not m.has("agent_api"):
            continue
        a = m.section("agent_api")
        token = resolver.resolve(a.get("token", str, ""), a.path_of("token"))
        if token and len(token.value()) < MIN_TOKEN_LENGTH:
            a.problem("token", f"at least {MIN_TOKEN_LENGTH} characters")
        if a.choice("caller_prompts", CALLER_PROMPTS, "spoken") == "agent-guided":
            guided.add(merchant_id)
        a.reject_unknown({"token", "caller_prompts"})
        if token:
            tokens[merchant_id] = token
    if problems:
        raise ConfigError(problems)
    settings = dataclasses.replace(settings, guided_merchants=frozenset(guided))
    return settings, MerchantTokens(tokens)
