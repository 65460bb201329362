"""`payivr events tail`: follow the `payivr:events` stream for operators.

Reporting without Redis skills: the events of SPEC 5 (and the flow events) one per
line, filtered by merchant, session and event name, from a point in time (`--since`)
and then as they happen. Events carry names and verdicts only, never card data.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from payivr.commands import CHECK_CONFIG_HEADING, load_or_report
from payivr.commands.callbacks import _config_arg
from payivr.commands.outbox_listing import redis_down

BLOCK_MS = 1000
BATCH = 500
_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Shown first, in this order; the other fields follow by name.
_LEADING = ("at", "event", "merchant", "session")


def add_commands(sub: Any) -> None:
    ev = sub.add_parser("events", help="the payivr:events stream, for operators")
    evsub = ev.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    tail = evsub.add_parser("tail", help="print events as they happen (filtered)")
    _config_arg(tail)
    tail.add_argument("--merchant", action="append", help="only this merchant (repeatable)")
    tail.add_argument("--session", action="append", help="only this session id (repeatable)")
    tail.add_argument(
        "--event", action="append", help="only this event name, e.g. payment.result (repeatable)"
    )
    tail.add_argument(
        "--since",
        help="start from this long ago (30s, 15m, 2h, 1d) or an ISO time; default: now",
    )
    tail.add_argument(
        "--no-follow", action="store_true", help="print what is there and stop (with --since)"
    )
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.set_defaults(handler=cmd_tail)


def since_ms(text: str, now_s: float) -> int:
    """`--since` as a stream position in milliseconds; ValueError if malformed."""
    match = _DURATION.fullmatch(text.strip())
    if match:
        return int((now_s - int(match.group(1)) * _UNIT_S[match.group(2)]) * 1000)
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        raise ValueError(f"{text!r}: give the time zone (e.g. 2026-12-03T15:00:00+00:00)")
    return int(moment.timestamp() * 1000)


class EventFilter:
    """Which events to show: every given criterion must match (none given: all)."""

    def __init__(
        self,
        merchants: Iterable[str] | None,
        sessions: Iterable[str] | None,
        names: Iterable[str] | None,
    ) -> None:
        self.merchants = frozenset(merchants or ())
        self.sessions = frozenset(sessions or ())
        self.names = frozenset(names or ())

    def __call__(self, fields: Mapping[str, str]) -> bool:
        if self.merchants and fields.get("merchant") not in self.merchants:
            return False
        if self.sessions and fields.get("session") not in self.sessions:
            return False
        return not self.names or fields.get("event") in self.names


def render(fields: Mapping[str, str], as_json: bool) -> str:
    if as_json:
        return json.dumps(dict(fields), sort_keys=True)
    first = [fields.get(name, "-") for name in _LEADING]
    rest = [f"{k}={v}" for k, v in sorted(fields.items()) if k not in _LEADING]
    return " ".join([*first, *rest])


def cmd_tail(args: argparse.Namespace) -> int:
    import redis

    from payivr.store import keys
    from payivr.store.connect import redis_client

    config = load_or_report(args.config, heading=CHECK_CONFIG_HEADING)
    if config is None:
        return 2
    try:
        position = "$" if args.since is None else f"{since_ms(args.since, time.time())}-0"
    except ValueError as exc:
        print(f"--since: {exc}", file=sys.stderr)
        return 2
    if args.no_follow and args.since is None:
        print("--no-follow needs --since (what to print)", file=sys.stderr)
        return 2
    wanted = EventFilter(args.merchant, args.session, args.event)
    cfg = config.services.redis
    # Typed loosely: redis-py's stubs cannot say that decode_responses gives str.
    client: Any = redis_client(cfg, socket_timeout=cfg.socket_timeout_s + BLOCK_MS / 1000)
    try:
        if position == "$":
            # The newest id now: events after it, none before (XREAD's `$` per call
            # would skip what arrives between two calls).
            newest = client.xrevrange(keys.EVENTS, count=1)
            position = newest[0][0] if newest else "0-0"
            print("following payivr:events (Ctrl-C to stop)", file=sys.stderr, flush=True)
        while True:
            block = None if args.no_follow else BLOCK_MS
            answer = client.xread({keys.EVENTS: position}, count=BATCH, block=block)
            entries = answer[0][1] if answer else []
            for entry_id, fields in entries:
                position = entry_id
                if wanted(fields):
                    print(render(fields, args.json), flush=True)
            if args.no_follow and len(entries) < BATCH:
                return 0
    except redis.RedisError as exc:
        return redis_down(exc)
    except KeyboardInterrupt:
        return 0
