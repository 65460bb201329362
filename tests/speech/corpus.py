"""The generated speech corpus for the tests (cached; see make_corpus.py)."""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

import pytest

from tests.fixtures.speech.make_corpus import Item, corpus


@cache
def english() -> tuple[Path, list[Item]]:
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        pytest.fail("espeak-ng and sox are needed for the speech corpus (make apt)")
    return corpus(["en"])


def first(items: list[Item], **match: object) -> Item:
    for item in items:
        if all(getattr(item, k) == v for k, v in match.items()):
            return item
    raise LookupError(match)
