"""The FreeSWITCH the real-engine tests run, and their skip when there is none."""

from __future__ import annotations

import pytest

from payivr.stack.up import find_freeswitch

FREESWITCH = find_freeswitch()
NEEDS_FREESWITCH = [
    pytest.mark.freeswitch,
    pytest.mark.skipif(
        FREESWITCH is None,
        reason="no FreeSWITCH: set FREESWITCH_BIN or put freeswitch on PATH (not packaged "
        "in Debian; production hosts get it from the vendor repository, ansible role freeswitch)",
    ),
]
