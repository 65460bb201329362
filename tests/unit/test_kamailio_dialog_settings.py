"""The dialog keep-alive interval: rendered as a define, refused below Kamailio's minimum."""

from __future__ import annotations

import pytest

from payivr.kamailio.settings import MIN_DLG_KA_INTERVAL_S, render_local_cfg
from tests.unit.test_kamailio_glue import settings


def test_keep_alive_interval_is_a_define() -> None:
    assert "#!define PAYIVR_DLG_KA_INTERVAL 45\n" in render_local_cfg(
        settings(dlg_ka_interval_s=45)
    )
    assert "#!define PAYIVR_DLG_KA_INTERVAL 30\n" in render_local_cfg(settings())


def test_below_the_dialog_modules_minimum_is_refused() -> None:
    # Kamailio itself would refuse to start ("ka interval too low"), with a less clear error.
    with pytest.raises(ValueError, match="dlg_ka_interval_s"):
        render_local_cfg(settings(dlg_ka_interval_s=MIN_DLG_KA_INTERVAL_S - 1))
