"""Errors of the core, split h11-style: the peer sent something bad (Rejection),
or a caller misused the API (IllegalTransition and friends)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rejection(Exception):
    """A payment request payivr refuses, with the SIP answer of SPEC section 4.

    `header` names the first offending header and `problem` says what is wrong; both
    go into the `Warning` header, so neither may ever contain card data (requests
    carry none).
    """

    status: int
    reason_phrase: str
    header: str
    problem: str
    retry_after: int | None = None

    def __str__(self) -> str:
        return f"{self.status} {self.reason_phrase}: {self.header}: {self.problem}"

    def warning(self, host: str) -> str:
        """The value of the SIP `Warning` header (code 399, RFC 3261 section 20.43)."""
        text = f"{self.header}: {self.problem}".replace("\\", "\\\\").replace('"', '\\"')
        return f'399 {host} "{text}"'


def bad_request(header: str, problem: str) -> Rejection:
    return Rejection(400, "Bad Payment Request", header, problem)


def forbidden(header: str, problem: str) -> Rejection:
    return Rejection(403, "Forbidden", header, problem)


def unknown_merchant(header: str, problem: str) -> Rejection:
    return Rejection(404, "Unknown Merchant", header, problem)


def not_acceptable(header: str, problem: str) -> Rejection:
    """488: the session the INVITE describes cannot be set up as offered (RFC 3261 21.4.26)."""
    return Rejection(488, "Not Acceptable Here", header, problem)


def unavailable(header: str, problem: str, retry_after: int) -> Rejection:
    return Rejection(503, "Service Unavailable", header, problem, retry_after)


class IllegalTransition(Exception):
    """The capture plan was handed an event it cannot take in its current state."""
