"""bench/kamailio_cps.py counts admitted calls by the one key each leaves."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from payivr.store import keys
from payivr.store.connect import redis_from_url

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[3] / "bench" / "kamailio_cps.py"


def bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kamailio_cps", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("kamailio_cps", module)
    spec.loader.exec_module(module)
    return module


def test_plain_relay_calls_count_one_key_per_call(redis_url: str) -> None:
    """The plain KEMI relay writes one hash per call (and nothing else): 40 calls are
    40 calls, not 20 as when all keys were halved."""
    client = redis_from_url(redis_url)
    for n in range(40):
        client.hset(f"bench:plain:c{n}@bench", "call_id", f"c{n}@bench")
    assert bench_module().calls_recorded(client) == 40


def test_full_admission_calls_count_their_sessions_not_their_other_keys(redis_url: str) -> None:
    client = redis_from_url(redis_url)
    for n in range(25):
        client.hset(keys.session_key(f"s{n}"), "state", "created")
        client.set(f"payivr:replay:r{n}", 1)
        client.set(f"payivr:inflight:c{n}", 1)
    client.xadd(keys.EVENTS, {"type": "session.created"})
    assert bench_module().calls_recorded(client) == 25
