"""`payivr freeswitch render`: write the FreeSWITCH configuration a payivr node needs."""

from __future__ import annotations

import argparse
from pathlib import Path

from payivr.commands import report_problems


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `payivr freeswitch ...`."""
    fs = subparsers.add_parser("freeswitch", help="FreeSWITCH configuration for payivr")
    sub = fs.add_subparsers(dest="freeswitch_command", required=True, metavar="ACTION")
    render = sub.add_parser(
        "render", help="render the FreeSWITCH config tree (replaces /etc/freeswitch)"
    )
    render.add_argument("--config", required=True, type=Path, help="payivr config file")
    render.add_argument("--out", required=True, type=Path, help="output directory")
    render.add_argument(
        "--node",
        default=None,
        help="this node's URI as in services.freeswitch_nodes (default: first)",
    )
    render.set_defaults(handler=_render)


def _render(args: argparse.Namespace) -> int:
    from payivr.core.config import ConfigError, load_config
    from payivr.freeswitch.render import render_tree, write_tree
    from payivr.freeswitch.settings import FreeswitchConfigError, freeswitch_settings

    try:
        config = load_config(args.config)
        settings = freeswitch_settings(config, args.node)
    except (ConfigError, FreeswitchConfigError) as exc:
        return report_problems(exc.problems, prefix="payivr freeswitch render: ")
    written = write_tree(render_tree(settings), args.out)
    print(
        f"wrote {len(written)} files under {args.out} "
        f"(SIP {settings.node.host}:{settings.sip_port}, SRTP {settings.srtp}, "
        f"TLS {'on' if settings.tls_enabled else 'off'})"
    )
    return 0
