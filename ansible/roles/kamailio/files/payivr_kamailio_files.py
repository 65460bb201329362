#!/usr/bin/env python3
"""Render payivr's Kamailio files with the package's own renderer (run in the venv).

    payivr_kamailio_files.py CONFIG KEMI_SCRIPT CONF_DIR OUT_DIR KNOBS_JSON

Writes payivr-local.cfg, dispatcher.list (and tls.cfg with TLS) into OUT_DIR, a
staging directory: the Ansible role copies them beside kamailio.cfg only when they
differ, so an unchanged config changes nothing. PAYIVR_PYLIB is set to this
interpreter's site-packages: Kamailio's embedded python3 (Debian's, the interpreter
this virtualenv was made from) imports payivr and its dependencies from there.
"""

from __future__ import annotations

import json
import sys
import sysconfig
from pathlib import Path

from payivr.core.config import ConfigError, load_config
from payivr.kamailio.settings import KamailioSettings, write_files


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    config_path, kemi_script, conf_dir, out_dir, knobs_json = argv
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    knobs = json.loads(knobs_json)
    settings = KamailioSettings.from_config(
        config,
        kemi_script=Path(kemi_script),
        runtime_dir=Path(conf_dir),
        pylib=Path(sysconfig.get_paths()["purelib"]),
        **knobs,
    )
    for path in write_files(settings, Path(out_dir)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
