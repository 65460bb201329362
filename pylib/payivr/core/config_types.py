"""The typed settings payivr's config loader produces (see payivr.core.config).

Frozen dataclasses only: the loader validates and fills them, everything else reads
them. Secrets arrive resolved, as `Secret`, whose repr never shows the value.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from payivr.core.configread import Secret
from payivr.core.connector_settings import ConnectorSettings

if TYPE_CHECKING:
    from payivr.core.flow.settings import FlowsConfig


def _no_flows() -> FlowsConfig:
    # Imported here: the flow modules import the config (LANGUAGES) themselves.
    from payivr.core.flow.settings import FlowsConfig

    return FlowsConfig()


@dataclass(frozen=True)
class SigningConfig:
    required: bool = True
    window_s: int = 300


@dataclass(frozen=True)
class CaptureConfig:
    attempts: int = 3
    confirm_card: bool = False
    cvv_optional: bool = False
    token_sale_cvv: bool = False
    digit_timeout_ms: int = 5000
    field_timeout_ms: int = 15000
    input: str = "dtmf"  # the default of X-Pay-Input: dtmf, speech or any


@dataclass(frozen=True)
class ProcessorConfig:
    """`type` picks the adapter; `options` are its own settings (validated by it).

    Option values written as `env:NAME` / `file:KEY` arrive here resolved, as Secret.
    """

    type: str = "sandbox"
    timeout_s: float = 10.0
    options: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class MerchantConfig:
    id: str
    name: str
    signing_secret: Secret
    callback_secret: Secret
    sources: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    signing: SigningConfig
    processor: ProcessorConfig
    currencies: tuple[str, ...]
    default_currency: str
    brands: frozenset[str]
    max_amount: int
    callback_hosts: tuple[str, ...]
    allow_http_callbacks: bool
    allow_private_callback_addresses: bool
    return_hosts: tuple[str, ...]
    default_return: str
    default_language: str
    capture: CaptureConfig
    record_ivr_leg: bool = False
    require_srtp: bool = False
    """Refuse (488) an INVITE whose SDP offer has a stream in plain RTP."""

    def source_allowed(self, address: str) -> bool:
        """Is a request from this IP address (a CTI trunk) allowed for this merchant?"""
        return address_in(address, self.sources)

    def callback_host_allowed(self, host: str) -> bool:
        return host.lower() in self.callback_hosts

    def return_host_allowed(self, host: str) -> bool:
        return host.lower() in self.return_hosts


@dataclass(frozen=True)
class SentinelConfig:
    master: str
    nodes: tuple[tuple[str, int], ...]
    # The Sentinels' own requirepass (not the data nodes'): None when they have none.
    password: Secret | None = None


@dataclass(frozen=True)
class RedisConfig:
    url: str = "redis://127.0.0.1:6379/0"
    password: Secret | None = None
    sentinel: SentinelConfig | None = None
    # Short on purpose: a Redis that does not answer must turn into a quick 503 at
    # Kamailio or a retry in a worker, not a stuck process.
    socket_timeout_s: float = 2.0
    connect_timeout_s: float = 1.0

    @property
    def db(self) -> int:
        """The database number: the URL's path (`redis://h:6379/3`) or `?db=` (unix://).

        With Sentinel only this part of the URL is used (the master comes from the
        Sentinels)."""
        return redis_db_of(self.url)


def redis_db_of(url: str) -> int:
    """The database number a Redis URL names (0 when it names none)."""
    parts = urlsplit(url)
    for name, value in parse_qsl(parts.query):
        if name == "db" and value.isdigit():
            return int(value)
    path = parts.path.strip("/") if parts.scheme != "unix" else ""
    return int(path) if path.isdigit() else 0


@dataclass(frozen=True)
class Listen:
    proto: str
    host: str
    port: int


# TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3 suites are always AEAD).
MODERN_CIPHERS = (
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
)


@dataclass(frozen=True)
class TlsConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 5061
    certificate: str = ""
    private_key: str = ""
    ca_certificate: str = ""
    """CA bundle: verifies client certificates (mutual) and FreeSWITCH nodes over TLS."""
    mutual: bool = False
    """Require and verify a client certificate from every CTI trunk (mutual TLS)."""
    cipher_list: str = MODERN_CIPHERS


@dataclass(frozen=True)
class RateLimitConfig:
    per_source_per_s: int = 500
    per_merchant_per_s: int = 1000
    retry_after_s: int = 5


@dataclass(frozen=True)
class KamailioConfig:
    advertise_host: str = "127.0.0.1"
    listen: tuple[Listen, ...] = (Listen("udp", "127.0.0.1", 5060),)
    tls: TlsConfig = TlsConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    # xhttp_prom on services.metrics_host (docs/monitoring.md); None: not served.
    metrics_port: int | None = None


@dataclass(frozen=True)
class EventSocketConfig:
    host: str
    port: int
    password: Secret


@dataclass(frozen=True)
class ReturnSettings:
    """How the ESL application returns calls. `proxy` is Kamailio's URI for bridged returns."""

    use_refer: bool = True
    sofia_profile: str = "payivr"
    proxy: str | None = None
    hangup_cause: str = "NORMAL_CLEARING"


@dataclass(frozen=True)
class SpeechConfig:
    """`services.esl.speech`: spoken card data (docs/dictation.md).

    English uses pocketsphinx's bundled model; other languages need an operator's
    Vosk model directory each (``vosk_models``), checked when the config loads."""

    pocketsphinx: bool = True
    vosk_models: Mapping[str, Path] = field(default_factory=dict)
    decode_processes: int = 2  # decoding worker processes per ESL process (CPU-bound)


@dataclass(frozen=True)
class EslConfig:
    """`services.esl`: the ESL application's socket, FreeSWITCH's event socket, prompts,
    recordings, its processor threads and how calls go back (docs/esl.md)."""

    listen_host: str
    listen_port: int
    event_socket: EventSocketConfig
    prompts_dir: Path
    linger_s: int  # how long FreeSWITCH keeps the socket after a hang-up
    recordings_dir: Path  # IVR-leg recordings (record_ivr_leg)
    processor_threads: int  # concurrent processor calls per process
    returns: ReturnSettings
    # Concurrent calls one process takes; the next are refused at once (`ivr-busy`).
    max_calls: int = 1000
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    metrics_port: int = 9465


@dataclass(frozen=True)
class CallbacksConfig:
    retry_for_s: int = 86400
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0
    metrics_port: int = 9464


@dataclass(frozen=True)
class WatchdogConfig:
    """How long a call may go silent before the watchdog gives it a `failed` result
    (payivr.core.orphan.WatchBudget): the bound on a dead node's calls."""

    answer_allowance_s: float = 60.0
    prompt_allowance_s: float = 30.0
    margin_s: float = 30.0


@dataclass(frozen=True)
class ServicesConfig:
    redis: RedisConfig
    session_ttl_s: int
    kamailio: KamailioConfig
    freeswitch_nodes: tuple[str, ...]
    esl: EslConfig
    callbacks: CallbacksConfig
    metrics_host: str = "127.0.0.1"  # where every service serves /metrics
    watchdog: WatchdogConfig = WatchdogConfig()


@dataclass(frozen=True)
class Config:
    path: Path
    services: ServicesConfig
    merchants: Mapping[str, MerchantConfig]
    raw: Mapping[str, object] = field(repr=False, default_factory=dict)
    """The YAML as read (secrets unresolved): for features that read their own section."""
    connectors: Mapping[str, ConnectorSettings] = field(default_factory=dict)
    """Named HTTP connectors (`connectors:`, payivr.core.connector_settings)."""
    flows: FlowsConfig = field(default_factory=lambda: _no_flows())
    """Flow files, entry points and queues (`flows:`, payivr.core.flow.settings)."""

    def merchant(self, merchant_id: str) -> MerchantConfig | None:
        return self.merchants.get(merchant_id)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# Remembered per (address, allowlist): every INVITE asks, and a trunk sends from a few
# addresses. Bounded, so a spray of sources cannot grow it (pike limits those anyway).
@functools.lru_cache(maxsize=4096)
def address_in(address: str, networks: tuple[Network, ...]) -> bool:
    """Is this IP address (a request's source) in one of the networks? Not an address: no."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)
