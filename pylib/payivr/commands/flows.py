"""`payivr flows check|simulate|media`: call flows (docs/flows.md).

- `check FILE...`: validate flow files (every problem with its path); with
  `--config`, against that config's connectors, merchants and queues too.
- `simulate --config C --entry N --ani N`: run the entry point's flow in this
  terminal. The flow's requests go to its connectors as configured (the fake
  Zendesk of `./dev demo-flow`, or the real service); prompts are printed, keys read
  one entry per line (empty: no input; `hangup`: hang up); in a queue, an empty line
  is the agent answering, `timeout` the queue's timeout. A `pay` activity runs the
  capture plan against the sandbox processor, as `payivr simulate` does. Events are
  printed, not sent; comments too, unless `--post-comments`: then they are queued
  on the config's Redis in the durable comment outbox, which `payivr callbacks
  work` delivers to the connector (the real service, or a test one).
- `media --config C`: speak every flow prompt (espeak-ng) and make the queues'
  music on hold (sox) under the prompts directory; recorded files are kept.
- `demo`: the reference flow (flows/zendesk-caller-aware.yaml) in this terminal,
  against a Zendesk stand-in on loopback: the demo caller has an open ticket.

Exit status: 0 ok, 1 the simulated call hit an error, 2 problems in files or config.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from payivr.commands import load_or_report, report_problems


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "flows",
        help="check, simulate and build call flows",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fsub = p.add_subparsers(dest="flows_command", required=True, metavar="ACTION")
    c = fsub.add_parser("check", help="validate flow files")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--config", help="check connectors, merchants and queues against it")
    c.set_defaults(handler=check)
    s = fsub.add_parser("simulate", help="run an entry point's flow in this terminal")
    s.add_argument("--config", required=True, help="the payivr YAML config (with flows:)")
    s.add_argument("--entry", required=True, help="the number dialled (an entry point)")
    s.add_argument("--ani", required=True, help="the caller's number")
    s.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a SIP header of the call (a trunk header entry point)",
    )
    s.add_argument(
        "--post-comments",
        action="store_true",
        help="queue the flow's comments in the durable outbox on the config's Redis "
        "(delivered by `payivr callbacks work`) instead of printing them",
    )
    s.set_defaults(handler=simulate)
    d = fsub.add_parser("demo", help="the reference flow against a loopback Zendesk")
    d.add_argument("--config", required=True, help="a payivr config (its merchants, secrets)")
    d.add_argument("--ani", help="the caller's number (default: the demo caller)")
    d.set_defaults(handler=demo)
    m = fsub.add_parser("media", help="build flow prompts and music on hold")
    m.add_argument("--config", required=True)
    m.add_argument("--prompts-dir", help="default: services.esl.prompts_dir")
    m.add_argument("--force", action="store_true", help="rebuild files that exist")
    m.set_defaults(handler=media)


def check(args: argparse.Namespace) -> int:
    from payivr.core.flow import FlowError, load_flow

    connectors = merchants = None
    queues: Mapping[str, object] | None = None
    if args.config:
        config = load_or_report(args.config, prefix="payivr flows check: ")
        if config is None:
            return 2
        connectors, merchants = set(config.connectors), set(config.merchants)
        queues = config.flows.queues
    status = 0
    for name in args.files:
        try:
            flow = load_flow(Path(name), connectors=connectors, merchants=merchants)
        except FlowError as exc:
            report_problems(exc.problems, prefix=f"{name}: ")
            status = 2
            continue
        used = sorted({str(a.queue) for a in flow.activities.values() if hasattr(a, "queue")})
        missing = [q for q in used if queues is not None and q not in queues]
        if missing:
            report_problems(
                [f"queue {q!r} is not in the config's flows.queues" for q in missing],
                prefix=f"{name}: ",
            )
            status = 2
            continue
        print(f"{name}: ok (flow {flow.name}, {len(flow.activities)} activities)")
    return status


def media(args: argparse.Namespace) -> int:
    from payivr.flows.media_build import flow_media
    from payivr.prompts_build import PromptBuildError

    config = load_or_report(args.config, prefix="payivr flows media: ")
    if config is None:
        return 2
    target = Path(args.prompts_dir) if args.prompts_dir else config.services.esl.prompts_dir
    try:
        report = flow_media(config.flows.flows.values(), target, force=args.force)
    except PromptBuildError as exc:
        print(f"payivr flows media: {exc}", file=sys.stderr)
        return 2
    print(f"{target}: {len(report.generated)} generated, {len(report.kept)} kept")
    return 0


def demo(args: argparse.Namespace) -> int:
    import os
    import tempfile

    import yaml

    from payivr.commands.simulate import Keypad
    from payivr.core.config import ConfigError, load_config
    from payivr.flows.demo_zendesk import DEMO_CALLER, DEMO_EMAIL, DEMO_TOKEN, DemoZendesk

    source = Path(args.config).resolve()
    from payivr.freeswitch.render import share_dir

    reference = share_dir() / "flows" / "zendesk-caller-aware.yaml"
    zendesk = DemoZendesk().start()
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
        if data.get("secrets_file"):
            data["secrets_file"] = str(source.parent / data["secrets_file"])
        data["connectors"] = {
            "zendesk": {
                "base_url": zendesk.base_url,
                "auth": {"kind": "zendesk", "email": DEMO_EMAIL,
                         "api_token": "env:PAYIVR_DEMO_ZENDESK_TOKEN"},
            }
        }  # fmt: skip
        data["flows"] = {
            "files": [str(reference)],
            "sources": ["127.0.0.1/32"],
            "entry_points": {"support": {"number": "8000", "flow": "zendesk-caller-aware"}},
            "queues": {"support": {"agents": ["sip:agent1@127.0.0.1:5090"]}},
        }
        with tempfile.TemporaryDirectory(prefix="payivr-flow-demo-") as tmp:
            path = Path(tmp) / "payivr.yaml"
            path.write_text(yaml.safe_dump(data), encoding="utf-8")
            os.environ["PAYIVR_DEMO_ZENDESK_TOKEN"] = DEMO_TOKEN
            try:
                config = load_config(path)
            except ConfigError as exc:
                return report_problems(exc.problems, prefix="payivr flows demo: ")
        entry = config.flows.entry_for("8000", {})
        if entry is None:  # configured just above
            return 2
        print("payivr flows demo: the reference flow, Zendesk stand-in at " + zendesk.base_url)
        print("  press 1 for an agent (then Enter: the agent answers), 2 to hang up")
        keypad = Keypad(sys.stdin, sys.stdout)
        with keypad.session():
            ok = asyncio.run(
                _simulate(config, entry, args.ani or DEMO_CALLER, "8000", keypad, sys.stdout)
            )
        return 0 if ok else 1
    finally:
        zendesk.stop()


def simulate(args: argparse.Namespace) -> int:
    from payivr.commands.simulate import Keypad

    config = load_or_report(args.config, prefix="payivr flows simulate: ")
    if config is None:
        return 2
    headers = {}
    for item in args.header:
        name, _, value = item.partition("=")
        headers[name.strip().lower()] = value.strip()
    entry = config.flows.entry_for(args.entry, headers)
    if entry is None:
        print(f"payivr flows simulate: no entry point for {args.entry}", file=sys.stderr)
        return 2
    keypad = Keypad(sys.stdin, sys.stdout)
    with keypad.session():
        ok = asyncio.run(
            _simulate(
                config, entry, args.ani, args.entry, keypad, sys.stdout,
                post_comments=args.post_comments,
            )
        )  # fmt: skip
    return 0 if ok else 1


async def _simulate(
    config: Any,
    entry: Any,
    ani: str,
    dialled: str,
    keypad: Any,
    out: TextIO,
    *,
    post_comments: bool = False,
) -> bool:
    from concurrent.futures import ThreadPoolExecutor

    from payivr.commands.simulate import sandbox_for
    from payivr.connectors import ConnectorClient
    from payivr.core.flow import CallInfo, FlowEngine
    from payivr.execution.executor import Executor
    from payivr.execution.registry import FLOW_REGISTRY
    from payivr.flows.context import FlowContext
    from payivr.flows.payment import CapturePayments
    from payivr.flows.ports import ConnectorPort
    from payivr.flows.terminal import (
        MemorySessions,
        PrintedComments,
        PrintedEvents,
        TerminalFlowTelephone,
        TerminalHooks,
    )

    flow = config.flows.flows[entry.flow]
    # A Call-ID of its own: the outbox keys a posted comment by it.
    call_id = f"simulate-{uuid.uuid4()}"
    engine = FlowEngine(flow, CallInfo(ani, dialled, entry.name, call_id, entry.language))
    sessions = MemorySessions()
    pool = ThreadPoolExecutor(4, thread_name_prefix="payivr-simulate")
    comments: Any = PrintedComments(out)
    if post_comments:
        from payivr.connectors.comments import CommentOutbox
        from payivr.flows.ports import OutboxComments
        from payivr.store.connect import redis_client

        outbox = CommentOutbox(redis_client(config.services.redis))
        comments = QueuedComments(OutboxComments(outbox, pool), out)
    ctx = FlowContext(
        label="simulate",
        plan=engine,
        telephone=TerminalFlowTelephone(flow, keypad, out),
        connectors=ConnectorPort(ConnectorClient(config.connectors), pool),
        comments=comments,
        events=PrintedEvents(out),
        payments=CapturePayments(
            store=sessions,
            sessions=sessions,
            merchants=dict(config.merchants),
            processor_for=lambda merchant: sandbox_for(config.merchants[merchant]),
        ),
        hooks=TerminalHooks(out),
    )
    out.write(f"  (flow {flow.name} at entry {entry.name}, caller {ani})\n")
    try:
        await Executor(FLOW_REGISTRY).run(ctx)
    except Exception as exc:
        out.write(f"  (the flow failed: {type(exc).__name__}: {exc})\n")
        return False
    finally:
        pool.shutdown(wait=False)
    out.write(f"  (flow ended by {engine.variables.get('ended_by') or '?'})\n")
    return True


class QueuedComments:
    """`--post-comments`: the comment goes into the durable outbox, and the terminal
    says so (with the outbox entry's id, never the text twice)."""

    def __init__(self, outbox: Any, out: TextIO) -> None:
        self.outbox = outbox
        self.out = out

    async def enqueue(self, connector: str, ticket_id: str, body: str, *, call_id: str) -> str:
        entry: str = await self.outbox.enqueue(connector, ticket_id, body, call_id=call_id)
        self.out.write(f"  (comment for {connector} ticket {ticket_id} queued: {entry})\n")
        return entry
