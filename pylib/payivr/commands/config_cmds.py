"""`payivr check-config` and `payivr sign`: the config and the CTI integrator's helper."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from payivr.commands import CHECK_CONFIG_HEADING, load_or_report
from payivr.core.config import ConfigError, load_config
from payivr.core.request import REQUEST_HEADERS, SIGNED_REQUEST_HEADERS
from payivr.core.signature import canonical_string, sign


def add_commands(sub: Any) -> None:
    check = sub.add_parser(
        "check-config", help="validate a config file; list every problem with its path"
    )
    check.add_argument("file", help="the payivr YAML config")
    check.set_defaults(handler=check_config)

    s = sub.add_parser(
        "sign",
        help="print the signed X-Pay-* header block for a payment request (for CTI integrators)",
        description="Computes X-Pay-Timestamp and X-Pay-Signature (SPEC section 3) for the "
        "given fields and Call-ID with the merchant's signing secret from the config.",
    )
    s.add_argument("--config", required=True, help="the payivr YAML config")
    s.add_argument("--merchant", required=True)
    s.add_argument("--call-id", required=True, help="the SIP Call-ID of the INVITE")
    s.add_argument("--operation", default="sale")
    s.add_argument("--order", required=True)
    s.add_argument("--amount")
    s.add_argument("--currency")
    s.add_argument("--token")
    s.add_argument("--callback-url")
    s.add_argument("--return", dest="return_")
    s.add_argument("--agent")
    s.add_argument("--language")
    s.add_argument("--description")
    s.add_argument("--timestamp", type=int, help="Unix seconds (default: now)")
    s.add_argument(
        "--show-canonical", action="store_true", help="also print the canonical string (stderr)"
    )
    s.set_defaults(handler=sign_headers)


def check_config(args: argparse.Namespace) -> int:
    """The core config, then every feature's own section (payivr.feature_checks):
    every problem listed at once with its path; exit status 2 if there is any."""
    from payivr.feature_checks import check_features

    try:
        config = load_config(args.file)
        problems = check_features(config)
    except ConfigError as exc:
        problems = exc.problems
    if problems:
        print(f"{args.file}: {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    summary = f"{len(config.merchants)} merchant(s): {', '.join(config.merchants)}"
    if config.connectors:
        summary += f"; {len(config.connectors)} connector(s): {', '.join(config.connectors)}"
    if config.flows.flows:
        entries = ", ".join(e.name for e in config.flows.entry_points)
        summary += f"; {len(config.flows.flows)} flow(s): {', '.join(config.flows.flows)}"
        summary += f" ({len(config.flows.entry_points)} entry point(s): {entries or 'none'})"
    print(f"{args.file}: ok ({summary})")
    return 0


def sign_headers(args: argparse.Namespace) -> int:
    config = load_or_report(args.config, heading=CHECK_CONFIG_HEADING)
    if config is None:
        return 2
    merchant = config.merchant(args.merchant)
    if merchant is None:
        print(f"unknown merchant {args.merchant!r}", file=sys.stderr)
        return 2
    values = {
        "x-pay-merchant": args.merchant,
        "x-pay-operation": args.operation,
        "x-pay-order": args.order,
        "x-pay-amount": args.amount,
        "x-pay-currency": args.currency,
        "x-pay-token": args.token,
        "x-pay-callback-url": args.callback_url,
        "x-pay-return": args.return_,
        "x-pay-agent": args.agent,
        "x-pay-language": args.language,
        "x-pay-description": args.description,
        "x-pay-timestamp": str(args.timestamp if args.timestamp is not None else int(time.time())),
    }
    fields = {k: v for k, v in values.items() if v}
    secret = merchant.signing_secret.encode()
    fields["x-pay-signature"] = sign(secret, fields, args.call_id, SIGNED_REQUEST_HEADERS)
    if args.show_canonical:
        print(canonical_string(fields, args.call_id, SIGNED_REQUEST_HEADERS), file=sys.stderr)
    for key in REQUEST_HEADERS:  # table order, easy to paste into a CTI config
        if key in fields:
            print(f"{REQUEST_HEADERS[key]}: {fields[key]}")
    return 0
