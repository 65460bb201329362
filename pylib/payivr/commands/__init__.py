"""Subcommands of the payivr CLI, one module per feature.

Also what every subcommand does with a config that has problems: list them on stderr
and exit with status 2 (`load_or_report`, `report_problems`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from payivr.core.config import Config

CONFIG_EXIT = 2
CHECK_CONFIG_HEADING = "config has problems (run payivr check-config):"


def report_problems(
    problems: Iterable[str], *, prefix: str = "", heading: str | None = None
) -> int:
    """Print a config's problems on stderr and return the exit status for them (2).

    With `heading`: the heading, then each problem indented on its own line; without:
    one line per problem, after `prefix` (the command's name, where it says one)."""
    if heading is not None:
        print(heading, *problems, sep="\n  ", file=sys.stderr)
    else:
        for problem in problems:
            print(f"{prefix}{problem}", file=sys.stderr)
    return CONFIG_EXIT


def load_or_report(
    path: str | os.PathLike[str], *, prefix: str = "", heading: str | None = None
) -> Config | None:
    """The config at `path`, or None once its problems are printed (`report_problems`);
    the caller then returns CONFIG_EXIT."""
    # Imported here: `payivr --help` should not pay for loading the config machinery.
    from payivr.core.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        report_problems(exc.problems, prefix=prefix, heading=heading)
        return None
