"""Each feature's own config section, validated before anything starts.

The core loader (`payivr.core.config.load_config`) validates what the core reads
(`services.esl` included) and leaves `services.freeswitch` and the `agent_api`
sections to their features. `payivr check-config` runs every check registered here after the
core load succeeds, so an operator sees every problem at once, each as
``"path: message"``.

Each check imports its feature inside the function: a feature whose optional
dependency is missing is reported as such, and the other checks still run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from payivr.core.config import Config, ConfigError
from payivr.core.configread import Reader

FeatureCheck = Callable[[Config, Mapping[str, str]], list[str]]

FEATURE_CHECKS: dict[str, FeatureCheck] = {}


def feature_check(name: str) -> Callable[[FeatureCheck], FeatureCheck]:
    """Register a check under a feature name (run in registration order)."""

    def register(check: FeatureCheck) -> FeatureCheck:
        FEATURE_CHECKS[name] = check
        return check

    return register


def check_features(config: Config, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every problem of every feature's section, in order, each listed once."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    for name, check in FEATURE_CHECKS.items():
        try:
            found = check(config, env)
        except ImportError as exc:
            missing = exc.name or str(exc)
            found = [f"{name}: cannot be checked, a module is missing ({missing})"]
        for problem in found:
            if problem not in problems:
                problems.append(problem)
    return problems


@feature_check("freeswitch")
def check_freeswitch(config: Config, environ: Mapping[str, str]) -> list[str]:
    """`services.freeswitch`, for every FreeSWITCH node the config names."""
    from payivr.freeswitch.settings import FreeswitchConfigError, freeswitch_settings

    problems: list[str] = []
    for node in config.services.freeswitch_nodes:
        try:
            freeswitch_settings(config, node)
        except FreeswitchConfigError as exc:
            problems.extend(exc.problems)
    return problems


@feature_check("tls")
def check_tls(config: Config, environ: Mapping[str, str]) -> list[str]:
    """The Kamailio TLS listener's certificate, key and CA (services.kamailio.tls)."""
    tls = config.services.kamailio.tls
    if not tls.enabled:
        return []
    from payivr.tls_files import check_tls_files

    return check_tls_files(
        "services.kamailio.tls", tls.certificate, tls.private_key, tls.ca_certificate
    )


@feature_check("agent_api")
def check_agent_api(config: Config, environ: Mapping[str, str]) -> list[str]:
    """`services.agent_api` and `merchants.<id>.agent_api`, when agent mode is set up."""
    root = Reader(config.raw, "", [])
    merchants = root.section("merchants")
    configured = root.section("services").has("agent_api") or any(
        merchants.section(m).has("agent_api")
        for m in merchants.keys()  # noqa: SIM118
    )
    if not configured:
        return []
    from payivr.agent.settings import load_agent_settings

    try:
        load_agent_settings(config, environ)
    except ConfigError as exc:
        return list(exc.problems)
    return []
