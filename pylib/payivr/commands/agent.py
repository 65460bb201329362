"""`payivr agent serve`: agent-assisted payments (HTTP API, SSE, panel, secure-trunk socket)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from typing import Any

from payivr.commands import report_problems


def add_commands(sub: Any) -> None:
    agent = sub.add_parser("agent", help="agent-assisted payments (SPEC section 9)")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True, metavar="ACTION")
    serve = agent_sub.add_parser(
        "serve",
        help="run the agent API, its panel and the agent-mode event socket",
        description="Serves the agent API (docs/agent-assisted.md, /openapi.yaml), the agent "
        "panel at /panel/, and the outbound event socket FreeSWITCH uses for secure-trunk "
        "calls, as configured under services.agent_api.",
    )
    serve.add_argument("--config", required=True, help="the payivr YAML config")
    serve.add_argument("--log-level", default="INFO")
    serve.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    from payivr.agent.service import serve
    from payivr.agent.settings import load_agent_settings
    from payivr.core.config import ConfigError, load_config
    from payivr.wiring import setup_logging

    setup_logging(args.log_level)
    try:
        config = load_config(args.config)
        load_agent_settings(config, os.environ)  # validate before any socket opens
    except ConfigError as exc:
        return report_problems(exc.problems)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config))
    return 0
