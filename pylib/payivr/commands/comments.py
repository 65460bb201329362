"""`payivr comments list|replay`: operator tools for the after-call comment outbox.

The comments are delivered by the worker that `payivr callbacks work` runs beside the
callback worker when the config has connectors (docs/connectors.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from payivr.commands import CHECK_CONFIG_HEADING, load_or_report
from payivr.commands.callbacks import _config_arg, _redis_down, _when


def add_commands(sub: Any) -> None:
    cm = sub.add_parser("comments", help="after-call CRM comments: list and replay")
    cmsub = cm.add_subparsers(dest="comments_command", required=True, metavar="ACTION")
    ls = cmsub.add_parser("list", help="pending, in-flight, retrying and dead comments")
    _config_arg(ls)
    ls.add_argument("--state", choices=("pending", "in-flight", "retrying", "dead"))
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(handler=cmd_list)
    rp = cmsub.add_parser("replay", help="try a comment again (a dead one is requeued)")
    _config_arg(rp)
    which = rp.add_mutually_exclusive_group(required=True)
    which.add_argument("comment_id", nargs="?", help="the comment id (from `comments list`)")
    which.add_argument("--all-dead", action="store_true", help="every dead comment")
    rp.set_defaults(handler=cmd_replay)


def _outbox(config: Any) -> Any:
    from payivr.connectors.comments import CommentOutbox
    from payivr.store.connect import redis_client

    return CommentOutbox(redis_client(config.services.redis, socket_timeout=5.0))


def cmd_list(args: argparse.Namespace) -> int:
    import redis

    config = load_or_report(args.config, heading=CHECK_CONFIG_HEADING)
    if config is None:
        return 2
    try:
        rows = _outbox(config).rows()
    except redis.RedisError as exc:
        return _redis_down(exc)
    if args.state:
        rows = [r for r in rows if r.state == args.state]
    for r in rows:
        # The body is not shown: it is for the ticket, not for a terminal's scrollback.
        line = {
            "comment_id": r.fields.get("comment_id", ""),
            "call_id": r.fields.get("call_id", ""),
            "connector": r.fields.get("connector", ""),
            "ticket_id": r.fields.get("ticket_id", ""),
            "state": r.state,
            "attempts": r.attempts,
            "next_attempt": _when(r.next_at_ms),
            "last_status": r.last_status,
            "last_error": r.last_error,
            "reason": r.reason,
        }
        if args.json:
            print(json.dumps(line))
        else:
            error = " ".join(x for x in (r.reason, r.last_status, r.last_error) if x)
            print(
                f"{line['comment_id']:<32} {line['connector']:<10} {line['ticket_id']:<10} "
                f"{r.state:<9} {r.attempts:>5} {line['next_attempt']:<20} {error}"
            )
    print(f"({len(rows)} comment(s))", file=sys.stderr)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    import redis

    from payivr.store.stream_outbox import now_ms

    config = load_or_report(args.config, heading=CHECK_CONFIG_HEADING)
    if config is None:
        return 2
    outbox = _outbox(config)
    try:
        if args.all_dead:
            print(f"requeued {outbox.replay_all_dead(now_ms())} dead comment(s)")
            return 0
        what = outbox.replay(args.comment_id, now_ms())
    except redis.RedisError as exc:
        return _redis_down(exc)
    print(f"{args.comment_id}: {what}")
    return 1 if what == "not-found" else 0
