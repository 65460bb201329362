"""`payivr esl serve --config FILE`: the ESL application (FreeSWITCH outbound socket)."""

from __future__ import annotations

import argparse
import asyncio

from payivr.commands import CONFIG_EXIT, load_or_report


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    esl = subparsers.add_parser("esl", help="the ESL application (card capture over DTMF)")
    sub = esl.add_subparsers(dest="esl_command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="listen for FreeSWITCH's outbound socket connections")
    serve.add_argument("--config", required=True, help="payivr YAML config file")
    serve.add_argument("--port", type=int, default=None, help="override services.esl.listen_port")
    serve.add_argument(
        "--metrics-port", type=int, help="override services.esl.metrics_port (0 turns it off)"
    )
    serve.add_argument("--log-level", default="INFO")
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from payivr.esl.service import build_service, serve
    from payivr.wiring import build_services, setup_logging

    setup_logging(args.log_level)
    config = load_or_report(args.config)
    if config is None:
        return CONFIG_EXIT
    services = build_services(config)
    service = build_service(config, services, port=args.port)
    port = config.services.esl.metrics_port if args.metrics_port is None else args.metrics_port
    metrics = (config.services.metrics_host, port) if port else None
    try:
        asyncio.run(serve(service, metrics=metrics))
    finally:
        services.close()
    return 0
