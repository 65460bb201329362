#!/usr/bin/env python3
"""Render rtpengine.conf from the payivr config (run in payivr's virtualenv).

    payivr_rtpengine_conf.py CONFIG OUT

Writes OUT and prints "rendered", or prints "absent" (and writes nothing) when the
config has no `services.rtpengine`. Exit code 2 on a config problem, each listed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from payivr.core.config import ConfigError, load_config
from payivr.media.settings import load_rtpengine_settings, render_conf


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        settings = load_rtpengine_settings(load_config(argv[0]))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    if settings is None:
        print("absent")
        return 0
    Path(argv[1]).write_text(render_conf(settings))
    print("rendered")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
