"""`payivr stack up|down` and `payivr demo`: the local stack and the end-to-end demo."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from payivr.commands import report_problems

DEFAULT_CONFIG = "config/payivr.example.yaml"


def add_commands(sub: Any) -> None:
    """Register `payivr stack ...` and `payivr demo`."""
    stack = sub.add_parser("stack", help="the whole local stack on loopback ports")
    ssub = stack.add_subparsers(dest="stack_command", required=True, metavar="ACTION")
    up = ssub.add_parser(
        "up",
        help="start Redis, Kamailio, FreeSWITCH (when found), the ESL "
        "application and the callback worker from one config",
    )
    up.add_argument("--config", required=True, type=Path, help="payivr config to start from")
    up.add_argument("--workdir", required=True, type=Path, help="state, logs, derived config")
    up.add_argument("--no-freeswitch", action="store_true", help="leave FreeSWITCH out")
    up.set_defaults(handler=_up)
    down = ssub.add_parser("down", help="stop what `stack up` started in a workdir")
    down.add_argument("--workdir", required=True, type=Path)
    down.set_defaults(handler=_down)
    status = ssub.add_parser("status", help="what runs in a workdir, on which ports")
    status.add_argument("--workdir", required=True, type=Path)
    status.set_defaults(handler=_status)

    demo = sub.add_parser("demo", help="one payment end to end on a local stack (see docs/demo.md)")
    demo.add_argument("--config", type=Path, default=Path(DEFAULT_CONFIG))
    demo.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    demo.add_argument("--language", choices=("es", "en", "pt", "nl"))
    demo.add_argument("--amount", type=int, default=1250, help="minor units (1250 = 12.50)")
    demo.add_argument(
        "--card",
        default="4111111111111111",
        help="a sandbox test card (SPEC 8), e.g. 4000000000000002 to see a decline",
    )
    demo.add_argument(
        "--input",
        choices=("dtmf", "speech"),
        default="dtmf",
        help="the caller keys the card (dtmf) or says it (speech: English, flite's voice)",
    )
    demo.add_argument("--keep", action="store_true", help="leave the stack running")
    demo.add_argument(
        "--no-freeswitch",
        action="store_true",
        help="run the demo without FreeSWITCH even if one is found",
    )
    demo.set_defaults(handler=_demo)


def _up(args: argparse.Namespace) -> int:
    from payivr.core.config import ConfigError
    from payivr.stack.up import StackError, stack_up

    try:
        state = stack_up(args.config, args.workdir, freeswitch=not args.no_freeswitch)
    except ConfigError as exc:
        return report_problems(exc.problems, prefix="payivr stack up: ")
    except StackError as exc:
        print(f"payivr stack up: {exc}", file=sys.stderr)
        return 1
    _print_state(state)
    print(f"stop with: payivr stack down --workdir {args.workdir}")
    return 0


def _down(args: argparse.Namespace) -> int:
    from payivr.stack.up import stack_down

    stopped = stack_down(args.workdir)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _status(args: argparse.Namespace) -> int:
    from payivr.stack.processes import StackState

    state = StackState.load(args.workdir)
    if state is None:
        print(f"no stack in {args.workdir}")
        return 1
    _print_state(state)
    return 0


def _print_state(state: Any) -> None:
    print(f"config: {state.config}")
    for name, port in state.ports.items():
        print(f"  port {name}: 127.0.0.1:{port}")
    for proc in state.processes:
        print(
            f"  {proc.name}: pid {proc.pid} {'running' if proc.alive() else 'STOPPED'}, "
            f"log {proc.log}"
        )
    for item in state.missing:
        print(f"  not started: {item}")


def _demo(args: argparse.Namespace) -> int:
    from payivr.core.config import ConfigError
    from payivr.stack.demo import DemoError, run_demo
    from payivr.stack.up import StackError

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="payivr-demo-"))
    try:
        report = run_demo(
            args.config,
            workdir,
            out=sys.stdout,
            keep=args.keep,
            language=args.language,
            amount=args.amount,
            freeswitch=not args.no_freeswitch,
            card=args.card,
            input_mode=args.input,
        )
    except ConfigError as exc:
        return report_problems(exc.problems, prefix="payivr demo: ")
    except (DemoError, StackError) as exc:
        print(f"payivr demo: failed: {exc}", file=sys.stderr)
        print(f"payivr demo: logs are in {workdir}", file=sys.stderr)
        return 1
    print("\npayivr demo: " + ("OK" if report.ok else "FAILED") + f" (files in {workdir})")
    return 0 if report.ok else 1
