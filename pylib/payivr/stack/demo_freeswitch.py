"""`payivr demo` with a real FreeSWITCH (FREESWITCH_BIN or `freeswitch` on PATH)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from payivr.stack.demo import DemoReport


def run_freeswitch_demo(
    config_path: Path,
    workdir: Path,
    binary: str,
    *,
    out: TextIO,
    keep: bool,
    language: str | None,
    amount: int,
) -> DemoReport:
    """Placeholder until the FreeSWITCH path lands (next commit)."""
    raise NotImplementedError("the FreeSWITCH demo path is not written yet")
