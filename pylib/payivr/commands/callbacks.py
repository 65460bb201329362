"""`payivr callbacks work|list|replay|verify`: the outbox worker and its operator tools."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from payivr.commands import CHECK_CONFIG_HEADING, load_or_report
from payivr.commands.outbox_listing import Column, OutboxListing, add_list_and_replay

DEFAULT_CONFIG = "/etc/payivr/payivr.yaml"
STOP_GRACE_S = 30.0


def add_commands(sub: Any) -> None:
    cb = sub.add_parser("callbacks", help="signed result callbacks: worker and operator tools")
    cbsub = cb.add_subparsers(dest="callbacks_command", required=True, metavar="ACTION")

    work = cbsub.add_parser(
        "work",
        help="deliver callbacks from the Redis outbox until stopped (systemd unit)",
        description="Runs the callback worker, and the after-call comment worker when the "
        "config has connectors (docs/connectors.md). Several may run at once, on one host "
        "or several sharing Redis. Options override services.callbacks of the config.",
    )
    _config_arg(work)
    work.add_argument("--consumer", default="", help="consumer name (default: host-pid)")
    work.add_argument(
        "--concurrency", type=int, default=64, help="deliveries in flight at once, per process"
    )
    work.add_argument(
        "--processes",
        type=int,
        default=1,
        help="worker processes (one per core; process i serves metrics on port + i)",
    )
    work.add_argument("--retry-for", type=float, help="seconds to keep retrying (default 86400)")
    work.add_argument("--backoff-base", type=float, default=1.0, help="first retry delay (s)")
    work.add_argument("--backoff-max", type=float, default=900.0, help="longest delay (s)")
    work.add_argument("--connect-timeout", type=float, help="seconds (config default)")
    work.add_argument("--read-timeout", type=float, help="seconds (config default)")
    work.add_argument("--lease", type=float, help="seconds an entry stays with one worker")
    work.add_argument(
        "--claim-idle",
        type=float,
        default=60.0,
        help="seconds before entries read by a dead worker are taken over",
    )
    work.add_argument(
        "--metrics-port", type=int, help="Prometheus port (config default; 0 turns it off)"
    )
    work.add_argument(
        "--metrics-host", help="address to serve metrics on (default services.metrics_host)"
    )
    work.add_argument(
        "--watchdog-interval",
        type=float,
        default=5.0,
        help="seconds between sweeps of the watchdog that finalises orphaned sessions "
        "(docs/architecture.md; 0 turns it off in this process)",
    )
    work.set_defaults(handler=cmd_work)

    add_list_and_replay(
        cbsub,
        CALLBACKS,
        _config_arg,
        replay_help="send a callback again (same event id)",
        key_help="the X-Payivr-Event-Id",
    )

    vf = cbsub.add_parser(
        "verify",
        help="check a callback's X-Payivr-Signature (for merchants)",
        description="Verifies t=<unix>,v1=<hex HMAC-SHA256 of '<t>.<raw body>'> with the "
        "callback secret. Exit 0 when valid, 1 when not. See docs/callbacks.md.",
    )
    vf.add_argument("--signature", required=True, help="the X-Payivr-Signature header value")
    vf.add_argument("--body-file", required=True, help="the raw request body ('-': stdin)")
    secret = vf.add_mutually_exclusive_group(required=True)
    secret.add_argument("--secret-env", metavar="NAME", help="environment variable with it")
    secret.add_argument("--secret-file", metavar="PATH", help="file holding only the secret")
    vf.add_argument(
        "--max-age",
        type=int,
        default=0,
        help="also refuse signatures older than this many seconds (0: no check)",
    )
    vf.set_defaults(handler=cmd_verify)


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=os.environ.get("PAYIVR_CONFIG", DEFAULT_CONFIG),
        help=f"the payivr YAML config (default $PAYIVR_CONFIG or {DEFAULT_CONFIG})",
    )


def _outbox(config: Any, block_s: float = 0.0) -> Any:
    """The outbox on `services.redis`; a caller that blocks up to `block_s` on a read
    gets that much more than the configured socket timeout."""
    from payivr.store.connect import redis_client
    from payivr.store.outbox import Outbox

    cfg = config.services.redis
    return Outbox(redis_client(cfg, socket_timeout=cfg.socket_timeout_s + block_s))


CALLBACKS = OutboxListing(
    noun="callback",
    key_field="event_id",
    json_fields=("event_id", "merchant", "url"),
    table=(Column("event_id", "EVENT ID", 28), Column("merchant", "MERCHANT", 12)),
    open_outbox=_outbox,
)


def cmd_work(args: argparse.Namespace) -> int:
    """Run the worker; SIGTERM/SIGINT stop it after the deliveries in hand."""
    config = load_or_report(args.config, heading=CHECK_CONFIG_HEADING)
    if config is None:
        return 2
    from payivr.callbacks.metrics import Metrics
    from payivr.callbacks.policy import CallbackPolicy
    from payivr.callbacks.worker import Worker, WorkerSettings
    from payivr.metrics import serve as serve_metrics

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    cfg = config.services.callbacks
    port = cfg.metrics_port if args.metrics_port is None else args.metrics_port
    if args.processes > 1:
        from payivr.callbacks.supervisor import supervise

        return supervise(lambda i: _child_argv(args, i, port), args.processes)
    settings = WorkerSettings(
        consumer=args.consumer,
        concurrency=max(1, args.concurrency),
        connect_timeout_s=args.connect_timeout or cfg.connect_timeout_s,
        read_timeout_s=args.read_timeout or cfg.read_timeout_s,
        retry_for_s=args.retry_for if args.retry_for is not None else cfg.retry_for_s,
        backoff_base_s=args.backoff_base,
        backoff_max_s=args.backoff_max,
        lease_s=args.lease,
        claim_idle_s=args.claim_idle,
    )
    policies = {mid: CallbackPolicy.from_merchant(m) for mid, m in config.merchants.items()}
    # XREADGROUP blocks up to block_ms: the socket timeout must outlast it.
    outbox = _outbox(config, block_s=settings.block_ms / 1000)
    metrics = Metrics()
    worker = Worker(outbox, policies, settings, metrics)
    watchdog = _watchdog(config, args.watchdog_interval)
    comments = _comment_worker(config, args.consumer, Metrics("comments", metrics.registry))
    server = None
    if port:
        metrics.add_outbox_gauges(outbox.counts)
        if comments is not None:
            comment_outbox = comments.outbox
            metrics.add_outbox_gauges(
                lambda: {f"comments_{k}": v for k, v in comment_outbox.counts().items()}
            )
        host = args.metrics_host or config.services.metrics_host
        server = serve_metrics(metrics.registry, host, port)

    def stop(_signum: int, _frame: Any) -> None:
        worker.stop()
        if watchdog is not None:
            watchdog.stop()
        if comments is not None:
            comments.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    comment_thread = None
    if comments is not None:
        import threading

        comment_thread = threading.Thread(target=comments.run, name="comments", daemon=True)
        comment_thread.start()
    try:
        worker.run()
    finally:
        if comment_thread is not None and comments is not None:
            comments.stop()
            comment_thread.join(STOP_GRACE_S)
        if server is not None:
            server.shutdown()
    return 0


def _watchdog(config: Any, interval_s: float) -> Any:
    """The orphaned-session watchdog in a thread of this worker (None: turned off)."""
    if interval_s <= 0:
        return None
    from payivr.store.connect import redis_client
    from payivr.watchdog import WatchdogSettings, start_watchdog

    client = redis_client(config.services.redis)
    return start_watchdog(client, config, WatchdogSettings(interval_s=interval_s))


def _comment_worker(config: Any, consumer: str, metrics: Any) -> Any:
    """The after-call comment worker, run beside the callback worker when the config
    has connectors (docs/connectors.md); None otherwise."""
    if not config.connectors:
        return None
    from payivr.connectors.client import ConnectorClient
    from payivr.connectors.comments import CommentOutbox, CommentWorker, comment_worker_settings
    from payivr.store.connect import redis_client

    settings = comment_worker_settings(consumer)
    client = redis_client(config.services.redis, socket_timeout=settings.block_ms / 1000 + 5)
    return CommentWorker(
        CommentOutbox(client), ConnectorClient(config.connectors), settings, metrics
    )


def _child_argv(args: argparse.Namespace, index: int, metrics_port: int) -> list[str]:
    """The command line of worker process `index` of `--processes N`."""
    argv = [
        sys.executable,
        "-m",
        "payivr.cli",
        "callbacks",
        "work",
        "--config",
        args.config,
        "--processes",
        "1",
        "--concurrency",
        str(args.concurrency),
        "--backoff-base",
        str(args.backoff_base),
        "--backoff-max",
        str(args.backoff_max),
        "--claim-idle",
        str(args.claim_idle),
        "--metrics-port",
        str(metrics_port + index if metrics_port else 0),
        "--watchdog-interval",
        str(args.watchdog_interval),
    ]
    optional = {
        "--metrics-host": args.metrics_host,
        "--retry-for": args.retry_for,
        "--connect-timeout": args.connect_timeout,
        "--read-timeout": args.read_timeout,
        "--lease": args.lease,
    }
    for flag, value in optional.items():
        if value is not None:
            argv += [flag, str(value)]
    if args.consumer:
        argv += ["--consumer", f"{args.consumer}-{index}"]
    return argv


def cmd_verify(args: argparse.Namespace) -> int:
    from payivr.core.signature import verify_callback

    if args.secret_env:
        secret = os.environ.get(args.secret_env, "")
        if not secret:
            print(f"${args.secret_env} is not set", file=sys.stderr)
            return 2
    else:
        secret = Path(args.secret_file).read_text(encoding="utf-8").strip()
    body = sys.stdin.buffer.read() if args.body_file == "-" else Path(args.body_file).read_bytes()
    window = args.max_age or None
    now = time.time() if window else None
    if verify_callback(secret.encode(), body, args.signature, now=now, window_s=window):
        print("signature valid")
        return 0
    print("signature NOT valid", file=sys.stderr)
    return 1
