"""Money as integer minor units with an ISO 4217 currency code; never a float."""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

from commerce_core.errors import CurrencyMismatch, FieldError, InvalidInput

__all__ = ["MAX_AMOUNT", "Money"]

#: The largest amount the library accepts, in minor units (matches the HTTP contract).
MAX_AMOUNT = 10**12

_CURRENCY = re.compile(r"[A-Z]{3}")

# ISO 4217 currencies whose minor unit is not the cent (all others have two decimals).
_EXPONENTS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
                     "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def _check_amount(_: object, __: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int:
        raise InvalidInput("invalid money", [FieldError("amount", "must be an integer")])
    if not 0 <= value <= MAX_AMOUNT:
        raise InvalidInput(
            "invalid money", [FieldError("amount", f"must be between 0 and {MAX_AMOUNT}")]
        )


def _check_currency(_: object, __: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise InvalidInput(
            "invalid money",
            [FieldError("currency", "must be an ISO 4217 code of three upper-case letters")],
        )


@attrs.frozen(order=False)
class Money:
    """An amount in minor units (cents) of one currency. Arithmetic refuses mixed currencies."""

    amount: int = attrs.field(validator=_check_amount)
    currency: str = attrs.field(validator=_check_currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        """No money in ``currency``."""
        return cls(0, currency)

    @classmethod
    def sum(cls, amounts: Iterable[Money], currency: str) -> Money:
        """Add up ``amounts``, all in ``currency``."""
        total = cls.zero(currency)
        for amount in amounts:
            total = total + amount
        return total

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatch(self.currency, other.currency)

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: int) -> Money:
        return Money(self.amount * factor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    @property
    def exponent(self) -> int:
        """Decimal places of the currency's minor unit (2 for EUR, 0 for JPY, 3 for KWD)."""
        return _EXPONENTS.get(self.currency, 2)

    def __str__(self) -> str:
        major, minor = divmod(self.amount, 10**self.exponent)
        return f"{major}.{minor:0{self.exponent}d} {self.currency}" if self.exponent else (
            f"{major} {self.currency}")
