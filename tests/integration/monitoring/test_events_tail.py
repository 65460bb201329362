"""`payivr events tail` against a real Redis: history with --since, filters, and
following new events as they are appended."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path
from typing import IO

import pytest
import redis

from payivr.commands.events import since_ms
from tests.integration.callbacks.cbsupport import write_config

EVENTS = "payivr:events"


def _tail(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "payivr.cli", "events", "tail", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _line(stream: IO[str], timeout: float = 20.0) -> str:
    """The next line of a child's output, or a failure after `timeout` seconds."""
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        pytest.fail(f"no output in {timeout} s")
    return stream.readline()


def _add(client: redis.Redis, event: str, merchant: str, session: str) -> None:
    fields = {"event": event, "merchant": merchant, "session": session, "at": "t"}
    client.xadd(EVENTS, fields)  # type: ignore[arg-type]


def test_since_filters_and_json(tmp_path: Path, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.delete(EVENTS)
    _add(client, "session.created", "acme", "S1")
    _add(client, "payment.result", "acme", "S1")
    _add(client, "payment.result", "globex", "S2")
    config = write_config(tmp_path, redis_url)

    proc = _tail(config, "--since", "1h", "--no-follow", "--merchant", "acme", "--json")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["event"], r["session"]) for r in rows] == [
        ("session.created", "S1"),
        ("payment.result", "S1"),
    ]

    proc = _tail(config, "--since", "1h", "--no-follow", "--event", "payment.result",
                 "--session", "S2")  # fmt: skip
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out.splitlines() == ["t payment.result globex S2"]


def test_follows_new_events_only(tmp_path: Path, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.delete(EVENTS)
    _add(client, "payment.result", "acme", "OLD")
    proc = _tail(write_config(tmp_path, redis_url), "--merchant", "acme")
    try:
        assert proc.stderr is not None and proc.stdout is not None
        assert _line(proc.stderr).startswith("following payivr:events")
        _add(client, "payment.result", "globex", "OTHER")
        _add(client, "payment.result", "acme", "NEW")
        assert _line(proc.stdout).split()[:4] == ["t", "payment.result", "acme", "NEW"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_since_parses_durations_and_zoned_times() -> None:
    assert since_ms("90s", 1000.0) == 910_000
    assert since_ms("2h", 10_000.0) == 2_800_000
    assert since_ms("1970-01-01T00:00:10+00:00", 0) == 10_000
    with pytest.raises(ValueError):
        since_ms("1970-01-01T00:00:10", 0)  # no time zone: ambiguous
    with pytest.raises(ValueError):
        since_ms("yesterday", 0)
