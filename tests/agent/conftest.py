"""Fixtures for the agent-mode tests: a running agent stack on real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.harness import AgentStack


@pytest.fixture()
def agent_stack(tmp_path: Path, redis_url: str) -> Iterator[AgentStack]:
    # Live digit counts on (not the default): the tests follow the per-key progress.
    stack = AgentStack(tmp_path, redis_url, live_digit_count=True).start()
    yield stack
    stack.close()


@pytest.fixture()
def agent_stack_no_live_count(tmp_path: Path, redis_url: str) -> Iterator[AgentStack]:
    stack = AgentStack(tmp_path, redis_url, live_digit_count=False).start()
    yield stack
    stack.close()
