"""`payivr kamailio run` and `payivr kamailio defines`: Kamailio from a payivr config."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from payivr.commands import load_or_report


def add_commands(sub: Any) -> None:
    kam = sub.add_parser("kamailio", help="run Kamailio from a payivr config, or write its files")
    ksub = kam.add_subparsers(dest="kamailio_command", required=True, metavar="ACTION")

    run = ksub.add_parser(
        "run",
        help="run Kamailio in the foreground (development, tests, demo)",
        description="Writes payivr-local.cfg, dispatcher.list (and tls.cfg) into a runtime "
        "directory and runs kamailio -f kamailio/kamailio.cfg there with a clean "
        "environment, until interrupted. Sockets default to the config's "
        "services.kamailio.listen (+ tls); --udp/--tcp/--tls replace them.",
    )
    _common(run)
    run.add_argument("--runtime-dir", type=Path, help="default: a new temporary directory")
    run.add_argument(
        "--fr-timer-ms",
        type=int,
        default=2000,
        help="how long a FreeSWITCH node may stay silent before failover",
    )
    run.add_argument(
        "--ds-ping-interval",
        type=int,
        default=10,
        help="seconds between OPTIONS probes of the FreeSWITCH nodes",
    )
    run.add_argument(
        "--dlg-ka-interval",
        type=int,
        default=30,
        help="seconds between in-dialog OPTIONS to the node of each call "
        "(a node that dies mid-call: Kamailio sends the BYE); 30 at least",
    )
    run.add_argument("--log-level", type=int, default=2, help="Kamailio debug level (2: info)")
    run.add_argument("--shm-mb", type=int, default=64)
    run.add_argument(
        "--kamailio-dir",
        type=Path,
        default=None,
        help="directory with kamailio.cfg and payivr_kemi.py (default: the checkout's)",
    )
    run.set_defaults(handler=run_kamailio)

    defines = ksub.add_parser(
        "defines",
        help="write payivr-local.cfg, dispatcher.list, tls.cfg for a production Kamailio",
        description="For /etc/kamailio beside kamailio.cfg (the Ansible role runs this). "
        "--pylib '' means the payivr package is installed where Debian's python3 finds it.",
    )
    _common(defines)
    defines.add_argument("--out", type=Path, required=True, help="e.g. /etc/kamailio")
    defines.add_argument("--kemi-script", type=Path, default=Path("/etc/kamailio/payivr_kemi.py"))
    defines.add_argument("--pylib", default="", help="directory holding the payivr package")
    defines.add_argument("--modules-dir", default=None)
    defines.add_argument("--ctl-socket", default="unix:/run/kamailio/kamailio_ctl")
    defines.set_defaults(handler=write_defines)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="the payivr YAML config")
    p.add_argument("--udp", action="append", default=[], metavar="HOST:PORT")
    p.add_argument("--tcp", action="append", default=[], metavar="HOST:PORT")
    p.add_argument("--tls", action="append", default=[], metavar="HOST:PORT")
    p.add_argument("--children", type=int, default=12, help="UDP worker processes")
    p.add_argument("--tcp-children", type=int, default=2)


def _sockets(args: argparse.Namespace) -> tuple[Any, ...] | None:
    from payivr.kamailio.settings import Socket

    sockets = [
        Socket.parse(proto, text)
        for proto in ("udp", "tcp", "tls")
        for text in getattr(args, proto)
    ]
    return tuple(sockets) or None


def run_kamailio(args: argparse.Namespace) -> int:
    """Run Kamailio in the foreground until SIGINT/SIGTERM."""
    from payivr.kamailio.runner import (
        KamailioProcess,
        default_runtime_dir,
        modules_dir,
        package_root,
        repo_kamailio_dir,
    )
    from payivr.kamailio.settings import KamailioSettings

    config = load_or_report(args.config)
    if config is None:
        return 2
    try:
        sockets = _sockets(args)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    runtime = args.runtime_dir or default_runtime_dir()
    kamailio_dir = args.kamailio_dir or repo_kamailio_dir()
    settings = KamailioSettings.from_config(
        config,
        kemi_script=kamailio_dir / "payivr_kemi.py",
        runtime_dir=runtime,
        listen=sockets,
        pylib=package_root(),
        modules_dir=modules_dir(),
        children=args.children,
        tcp_children=args.tcp_children,
        fr_timer_ms=args.fr_timer_ms,
        ds_ping_interval_s=args.ds_ping_interval,
        dlg_ka_interval_s=args.dlg_ka_interval,
        log_level=args.log_level,
    )
    process = KamailioProcess(settings, config, kamailio_dir=kamailio_dir, shm_mb=args.shm_mb)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        process.start(foreground_log=True)
        listening = ", ".join(str(s) for s in settings.listen)
        print(f"kamailio ready on {listening} (runtime {runtime})", file=sys.stderr)
        if process.proc is None:
            raise RuntimeError("kamailio did not start: no process")
        return process.proc.wait()
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        process.stop()


def write_defines(args: argparse.Namespace) -> int:
    """Write the generated files for a production Kamailio."""
    from payivr.kamailio.runner import modules_dir
    from payivr.kamailio.settings import KamailioSettings, write_files

    config = load_or_report(args.config)
    if config is None:
        return 2
    try:
        settings = KamailioSettings.from_config(
            config,
            kemi_script=args.kemi_script,
            runtime_dir=args.out,
            listen=_sockets(args),
            pylib=Path(args.pylib) if args.pylib else None,
            modules_dir=args.modules_dir or modules_dir(),
            ctl_socket=args.ctl_socket,
            children=args.children,
            tcp_children=args.tcp_children,
        )
        for path in write_files(settings, args.out):
            print(path)
    except (ValueError, RuntimeError) as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0
