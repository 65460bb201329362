"""Card data holders: the only types in payivr that ever hold keyed digits.

They keep digits in a mutable bytearray so they can be wiped in place once the
processor call is over, and their repr/str never show a digit, so an accidental
log line, f-string or traceback prints nothing sensitive.
"""

from __future__ import annotations

import hmac
from typing import NoReturn


class SecretDigits:
    """Digits keyed by a caller (PAN, expiry, CVV, or anything else typed)."""

    __slots__ = ("_buf", "_wiped")

    def __init__(self, digits: str | bytes | bytearray) -> None:
        raw = digits.encode("ascii") if isinstance(digits, str) else bytes(digits)
        self._buf = bytearray(raw)
        self._wiped = False

    @classmethod
    def joined(cls, parts: list[SecretDigits]) -> SecretDigits:
        """One secret of ``parts`` in order (the chunks of a spoken card number),
        copied buffer to buffer: the digits never pass through a ``str``."""
        joined = cls("")
        for part in parts:
            if part.wiped:
                raise ValueError("secret digits were already wiped")
            joined._buf += part._buf
        return joined

    def reveal(self) -> str:
        """The digits, for the one place that must send them (the processor call)."""
        if self._wiped:
            raise ValueError("secret digits were already wiped")
        return self._buf.decode("ascii")

    def wipe(self) -> None:
        """Overwrite the digits in place; later reveal() calls fail."""
        for i in range(len(self._buf)):
            self._buf[i] = 0
        self._buf = bytearray()
        self._wiped = True

    @property
    def wiped(self) -> bool:
        return self._wiped

    def __len__(self) -> int:
        return len(self._buf)

    def is_digits(self) -> bool:
        return bool(self._buf) and all(0x30 <= b <= 0x39 for b in self._buf)

    def is_key_in(self, keys: str) -> bool:
        """One key, and one of `keys` (a terminator such as "#"): digits never compared."""
        return len(self._buf) == 1 and chr(self._buf[0]) in keys and not self.is_digits()

    def append(self, other: SecretDigits) -> None:
        """Add `other`'s digits at the end (a field assembled key by key)."""
        if self._wiped or other.wiped:
            raise ValueError("secret digits were already wiped")
        self._buf.extend(other._buf)

    def copy_to(self, out: bytearray) -> None:
        """Append the digits to ``out`` (a buffer the caller wipes): how a decoding
        worker sends them over its pipe without making a ``str`` of them."""
        if self._wiped:
            raise ValueError("secret digits were already wiped")
        out += self._buf

    def last4(self) -> str:
        """Last four digits: the only part that may be shown (masked card, prompts)."""
        return self._buf[-4:].decode("ascii") if len(self._buf) >= 4 else ""

    def __repr__(self) -> str:
        return "<SecretDigits wiped>" if self._wiped else f"<SecretDigits len={len(self)}>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        # Between secrets only, never against str, so nobody is tempted to compare
        # with a literal card number in production code. compare_digest: the time
        # taken does not depend on where the digits differ (only on their lengths).
        if not isinstance(other, SecretDigits):
            return NotImplemented
        return hmac.compare_digest(self._buf, other._buf)

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> NoReturn:
        raise TypeError("SecretDigits cannot be pickled")

    def __getstate__(self) -> NoReturn:
        raise TypeError("SecretDigits cannot be serialised")


class CardDetails:
    """A captured card: PAN, expiry (MMYY) and optional CVV, plus what may be shown."""

    __slots__ = ("brand", "cvv", "expiry", "last4", "pan")

    def __init__(
        self,
        pan: SecretDigits,
        expiry: SecretDigits,
        cvv: SecretDigits | None,
        brand: str,
    ) -> None:
        self.pan = pan
        self.expiry = expiry
        self.cvv = cvv
        self.brand = brand
        self.last4 = pan.last4()

    def wipe(self) -> None:
        self.pan.wipe()
        self.expiry.wipe()
        if self.cvv is not None:
            self.cvv.wipe()

    @property
    def wiped(self) -> bool:
        return self.pan.wiped

    def masked(self) -> str:
        """`************1111`: the form used in headers and callbacks."""
        return "*" * 12 + self.last4

    def __repr__(self) -> str:
        return f"<CardDetails brand={self.brand} last4={self.last4}>"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("CardDetails cannot be pickled")
