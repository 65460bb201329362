"""The `payivr` console script. Each feature registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Feature modules that expose `add_commands(subparsers)`. Imported lazily so that a
# subcommand never pays for (or fails on) another feature's dependencies.
FEATURES: tuple[str, ...] = (
    "payivr.commands.config_cmds",
    "payivr.commands.callbacks",
    "payivr.commands.comments",
    "payivr.commands.freeswitch",
    "payivr.commands.prompts",
    "payivr.commands.stack",
    "payivr.commands.simulate",
    "payivr.commands.esl",
    "payivr.commands.agent",
    "payivr.commands.kamailio",
    "payivr.commands.flows",
    "payivr.commands.events",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="payivr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in FEATURES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from payivr.core.logfilter import install_log_filter

    install_log_filter()
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
