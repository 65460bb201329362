from __future__ import annotations

import logging
import pickle

import pytest

from payivr.core.logfilter import install_log_filter, mask_digits
from payivr.core.secrets import CardDetails, SecretDigits

PAN = "4111111111111111"


@pytest.mark.parametrize(
    "text",
    [
        PAN,
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "pan=378282246310005;",
        "x" + "5" * 19 + "x",
    ],
)
def test_pan_like_runs_are_masked(text: str) -> None:
    assert not any(run in mask_digits(text) for run in ("41111111", "378282", "5555555555"))


def test_short_numbers_survive() -> None:
    assert mask_digits("order 1250 at 12:00, auth 123456") == "order 1250 at 12:00, auth 123456"


def test_filter_masks_messages_args_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("payivr.test.filter")
    install_log_filter(logger)
    with caplog.at_level(logging.DEBUG, logger="payivr.test.filter"):
        logger.info("card %s", PAN)
        try:
            raise ValueError(f"processor echoed {PAN}")
        except ValueError:
            logger.exception("failed")
    assert PAN not in caplog.text
    assert "[digits masked]" in caplog.text


def test_secret_digits_never_show() -> None:
    s = SecretDigits(PAN)
    percent = "%s" % s  # noqa: UP031 (the %-format path must hide digits too)
    for text in (repr(s), str(s), f"{s}", f"{s!r}", percent):
        assert "1111" not in text and "4111" not in text
    with pytest.raises(TypeError):
        pickle.dumps(s)
    assert s.reveal() == PAN and s.last4() == "1111"
    s.wipe()
    assert s.wiped and len(s) == 0
    with pytest.raises(ValueError):
        s.reveal()


def test_card_details_wipe_everything() -> None:
    card = CardDetails(SecretDigits(PAN), SecretDigits("1230"), SecretDigits("123"), "visa")
    assert repr(card) == "<CardDetails brand=visa last4=1111>"
    assert card.masked() == "************1111"
    card.wipe()
    assert card.pan.wiped and card.expiry.wiped and card.cvv is not None and card.cvv.wiped


def test_secrets_compare_with_compare_digest_and_no_copies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The comments say constant time: both comparisons go through hmac.compare_digest,
    and SecretDigits hands it its own bytearrays (no immutable copy of the digits)."""
    import hmac

    from payivr.core.configread import Secret

    seen: list[tuple[type, type]] = []
    real = hmac.compare_digest

    def spy(a: bytes | bytearray, b: bytes | bytearray) -> bool:
        seen.append((type(a), type(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert SecretDigits("4111") == SecretDigits("4111")
    assert SecretDigits("4111") != SecretDigits("4112")
    assert SecretDigits("4111") != "4111"  # type: ignore[comparison-overlap]
    assert seen == [(bytearray, bytearray)] * 2
    assert Secret("s3cret", "env:X") == Secret("s3cret", "file:y")
    assert Secret("s3cret", "env:X") != Secret("s3creT", "env:X")
    assert len(seen) == 4
