"""Order id rules a processor adds on top of SPEC section 2.

PURE: no I/O. The request parser calls :func:`check_order` so that an order id the
merchant's processor would refuse is rejected at Kamailio (400), before a caller
keys a single digit, instead of failing in the IVR after the card was captured.

SPEC section 2 already limits every order id to ``[A-Za-z0-9_-]{1,32}``; this module
only narrows it further per processor type.
"""

from __future__ import annotations

import re

# Redsys (Ds_Merchant_Order): 4 to 12 characters, the first four numeric, the rest
# ASCII letters or digits only (no "_" or "-"). See docs/processors.md for sources.
_REDSYS_ORDER = re.compile(r"[0-9]{4}[0-9A-Za-z]{0,8}")


def check_order(processor_type: str, order: str) -> str | None:
    """Return None when ``order`` suits ``processor_type``, else what is wrong.

    The message is meant for the ``Warning`` header of a 400 (it never contains the
    order itself, which the caller already knows). An unknown processor type is the
    config validator's business, so it narrows nothing here.
    """
    if processor_type == "redsys":
        if not 4 <= len(order) <= 12:
            return "Redsys needs 4 to 12 characters"
        if not order[:4].isascii() or not order[:4].isdigit():
            return "Redsys needs the first 4 characters to be digits"
        if _REDSYS_ORDER.fullmatch(order) is None:
            return "Redsys allows only letters and digits"
        return None
    # sandbox and http take any SPEC order id.
    return None
