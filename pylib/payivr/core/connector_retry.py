"""When to try a connector request again: pure decisions, the client does the waiting."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from payivr.core.connector_settings import ConnectorRetry

SAFE_METHODS = frozenset({"GET", "HEAD"})


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - now_s, 0.0)


def retry_delay(
    *,
    method: str,
    status: int | None,
    timed_out: bool,
    connect_failed: bool,
    retry_after_s: float | None,
    attempt: int,
    remaining_s: float,
    policy: ConnectorRetry,
) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or None: do not retry.

    `attempt` counts the tries made so far (1 after the first). A connection that was
    never made is always worth another try; a timeout or a 5xx only for safe methods
    (a PUT that timed out may have been applied); 429 for every method (the server
    refused it) after `Retry-After`, capped at `max_retry_after_s`. Nothing is retried
    when the wait would not leave time for the next attempt.
    """
    if attempt >= policy.attempts:
        return None
    safe = method.upper() in SAFE_METHODS
    if status == 429:
        wait = retry_after_s if retry_after_s is not None else policy.backoff_s * attempt
        if wait > policy.max_retry_after_s:
            return None
    elif connect_failed or (safe and (timed_out or (status is not None and status >= 500))):
        wait = policy.backoff_s * (2 ** (attempt - 1))
    else:
        return None
    if wait >= remaining_s:
        return None
    return wait
