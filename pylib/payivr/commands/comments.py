"""`payivr comments list|replay`: operator tools for the after-call comment outbox.

The comments are delivered by the worker that `payivr callbacks work` runs beside the
callback worker when the config has connectors (docs/connectors.md).
"""

from __future__ import annotations

from typing import Any

from payivr.commands.callbacks import _config_arg
from payivr.commands.outbox_listing import Column, OutboxListing, add_list_and_replay


def _outbox(config: Any) -> Any:
    from payivr.connectors.comments import CommentOutbox
    from payivr.store.connect import redis_client

    return CommentOutbox(redis_client(config.services.redis, socket_timeout=5.0))


COMMENTS = OutboxListing(
    noun="comment",
    key_field="comment_id",
    json_fields=("comment_id", "call_id", "connector", "ticket_id"),
    table=(
        Column("comment_id", "COMMENT ID", 32),
        Column("connector", "CONNECTOR", 10),
        Column("ticket_id", "TICKET", 10),
    ),
    open_outbox=_outbox,
)


def add_commands(sub: Any) -> None:
    cm = sub.add_parser("comments", help="after-call CRM comments: list and replay")
    cmsub = cm.add_subparsers(dest="comments_command", required=True, metavar="ACTION")
    add_list_and_replay(
        cmsub,
        COMMENTS,
        _config_arg,
        replay_help="try a comment again (a dead one is requeued)",
        key_help="the comment id (from `comments list`)",
    )
