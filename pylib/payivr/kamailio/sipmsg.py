"""Small, pure helpers over the SIP message text Kamailio hands the KEMI script.

Reading the raw header block once (KSR.kx.get_msgbuf) and picking the `X-Pay-*`
lines with one compiled regex costs less than a dozen KSR header look-ups per call,
and keeps duplicates, which the core must see (a header twice with different values
is a 400).
"""

from __future__ import annotations

import re

from payivr.core.admission import MessageBody
from payivr.core.errors import Rejection
from payivr.core.request import REQUEST_HEADERS

# Header lines only: the request line and the body never match (see payment_headers).
_PAY_LINE = re.compile(r"^(x-pay-[a-z0-9-]*)[ \t]*:([^\r\n]*)", re.IGNORECASE | re.MULTILINE)
# Content-Type, or its compact form "c" (RFC 3261 section 7.3.3).
_CONTENT_TYPE = re.compile(r"^(?:content-type|c)[ \t]*:([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


def header_block(message: str) -> str:
    """The message up to the blank line that ends the headers."""
    end = message.find("\r\n\r\n")
    if end < 0:
        end = message.find("\n\n")
    return message if end < 0 else message[:end]


def payment_headers(message: str) -> list[tuple[str, str]]:
    """Every `X-Pay-*` header line of the message as (name, value), duplicates kept.

    Folded (multi-line) header values are not joined: RFC 3261 senders should not fold,
    and a folded payment header then fails validation rather than passing half-read.
    """
    return [(name, value.strip()) for name, value in _PAY_LINE.findall(header_block(message))]


def message_body(message: str) -> MessageBody:
    """The body after the blank line, with the Content-Type it was sent under."""
    for separator in ("\r\n\r\n", "\n\n"):
        end = message.find(separator)
        if end >= 0:
            text = message[end + len(separator) :]
            break
    else:
        text = ""
    found = _CONTENT_TYPE.search(header_block(message))
    return MessageBody(found.group(1).strip() if found else "", text)


def unknown_payment_headers(headers: list[tuple[str, str]]) -> set[str]:
    """Names of `X-Pay-*` headers the SPEC does not define: they are not forwarded."""
    return {name for name, _ in headers if name.lower() not in REQUEST_HEADERS}


def mask_card_digits(text: str) -> str:
    """Mask PAN-like digit runs (a CTI may put a card number in any header).

    Imported on first use, in a Kamailio worker: payivr.core.logfilter imports logging,
    which must not be loaded before Kamailio forks (its at-fork hooks complain).
    """
    from payivr.core.logfilter import mask_digits

    return mask_digits(text)


def reply_headers(rejection: Rejection, host: str) -> str:
    """The header lines a rejection carries: Warning (SPEC 4), Retry-After for 503.

    The Warning quotes what the core says is wrong, which may echo a value (a merchant
    id): PAN-like digit runs are masked, so no card number goes back out in SIP.
    """
    text = f"Warning: {mask_card_digits(rejection.warning(host))}\r\n"
    if rejection.retry_after is not None:
        text += f"Retry-After: {rejection.retry_after}\r\n"
    return text
