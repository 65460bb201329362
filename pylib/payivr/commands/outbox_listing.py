"""`list` and `replay` for an outbox: one implementation for `payivr callbacks` and
`payivr comments`, over the StreamOutbox both are built on (store/stream_outbox.py).

An entry's body is never shown: it is for the merchant or the ticket, not for a
terminal's scrollback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from payivr.commands import CHECK_CONFIG_HEADING, load_or_report
from payivr.store.stream_outbox import RawRow

STATES = ("pending", "in-flight", "retrying", "dead")


@dataclass(frozen=True)
class Column:
    """An entry field in the table: its heading and width."""

    field: str
    heading: str
    width: int


@dataclass(frozen=True)
class OutboxListing:
    """What differs between the outboxes an operator lists and replays."""

    noun: str  # "callback", "comment"
    key_field: str  # the entry field an operator names it by
    json_fields: tuple[str, ...]  # the entry fields in `list --json`, key first
    table: tuple[Column, ...]  # the entry fields in the table, key first
    open_outbox: Callable[[Any], Any]  # config -> StreamOutbox


def when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def redis_down(exc: Exception) -> int:
    print(f"redis unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 3


def _with_outbox(
    listing: OutboxListing, args: argparse.Namespace, act: Callable[[Any], int]
) -> int:
    """`act` on the configured outbox; exit 2 for a bad config, 3 when Redis is down."""
    import redis

    config = load_or_report(args.config, heading=CHECK_CONFIG_HEADING)
    if config is None:
        return 2
    try:
        return act(listing.open_outbox(config))
    except redis.RedisError as exc:
        return redis_down(exc)


def cmd_list(listing: OutboxListing, args: argparse.Namespace) -> int:
    return _with_outbox(listing, args, lambda outbox: _print_rows(listing, args, outbox.raw_rows()))


def _print_rows(listing: OutboxListing, args: argparse.Namespace, rows: list[RawRow]) -> int:
    if args.state:
        rows = [r for r in rows if r.state == args.state]
    if args.json:
        for r in rows:
            line: dict[str, object] = {f: r.fields.get(f, "") for f in listing.json_fields}
            line.update(
                state=r.state,
                attempts=r.attempts,
                next_attempt=when(r.next_at_ms),
                last_status=r.last_status,
                last_error=r.last_error,
                reason=r.reason,
            )
            print(json.dumps(line))
        return 0
    print(
        " ".join(f"{c.heading:<{c.width}}" for c in listing.table)
        + f" {'STATE':<9} {'TRIES':>5} {'NEXT ATTEMPT':<20} LAST ERROR"
    )
    for r in rows:
        error = " ".join(x for x in (r.reason, r.last_status, r.last_error) if x)
        print(
            " ".join(f"{r.fields.get(c.field, ''):<{c.width}}" for c in listing.table)
            + f" {r.state:<9} {r.attempts:>5} {when(r.next_at_ms):<20} {error}"
        )
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing"
    print(f"({summary})", file=sys.stderr)
    return 0


def cmd_replay(listing: OutboxListing, args: argparse.Namespace) -> int:
    return _with_outbox(listing, args, lambda outbox: _replay(listing, args, outbox))


def _replay(listing: OutboxListing, args: argparse.Namespace, outbox: Any) -> int:
    from payivr.store.stream_outbox import now_ms

    if args.all_dead:
        n = outbox.replay_all_dead(now_ms())
        print(f"requeued {n} dead {listing.noun}(s)")
        return 0
    key = getattr(args, listing.key_field)
    what = outbox.replay_where(listing.key_field, key, now_ms())
    messages = {
        "requeued": "requeued (was dead); a worker retries it, same "
        + listing.key_field.replace("_", " "),
        "due-now": "was waiting for a retry; due now",
        "in-flight": "being delivered right now; nothing to do",
        "pending": "pending; a worker will take it",
        "not-found": f"no such {listing.noun} (delivered {listing.noun}s are not kept)",
    }
    print(f"{key}: {messages[what]}")
    return 1 if what == "not-found" else 0


def add_list_and_replay(
    sub: Any,
    listing: OutboxListing,
    config_arg: Callable[[argparse.ArgumentParser], None],
    *,
    replay_help: str,
    key_help: str,
) -> None:
    """The `list` and `replay` actions under an outbox's command."""
    ls = sub.add_parser("list", help=f"pending, in-flight, retrying and dead {listing.noun}s")
    config_arg(ls)
    ls.add_argument("--state", choices=STATES)
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(handler=lambda args: cmd_list(listing, args))
    rp = sub.add_parser("replay", help=replay_help)
    config_arg(rp)
    which = rp.add_mutually_exclusive_group(required=True)
    which.add_argument(listing.key_field, nargs="?", help=key_help)
    which.add_argument("--all-dead", action="store_true", help=f"every dead {listing.noun}")
    rp.set_defaults(handler=lambda args: cmd_replay(listing, args))
