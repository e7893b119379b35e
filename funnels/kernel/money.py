"""Money as an integer count of minor units with a currency; never a float."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, InvalidOperation

from funnels.kernel.text import brief, cut

# ISO 4217 minor-unit exponents that differ from the usual 2.
_EXPONENTS: dict[str, int] = {
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
}


def exponent(currency: str) -> int:
    """Number of decimal places in the currency's minor unit (CNY: 2, JPY: 0)."""
    return _EXPONENTS.get(currency.upper(), 2)


def valid_currency(currency: str) -> bool:
    return len(currency) == 3 and currency.isascii() and currency.isalpha() and currency.isupper()


MAX_MINOR_DIGITS = 18
"""Most digits of an amount in minor units: it must fit a signed 64-bit column."""


def to_minor(amount: str | Decimal | int, currency: str) -> int:
    """Parse a decimal amount ("20.00") into minor units, refusing sub-minor precision.

    Raises ``ValueError`` with a readable message for anything that is not an exact amount.
    """
    shown = cut(str(amount))
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise ValueError(f'{brief(amount)} is not an amount; write it like "20.00"') from None
    if not value.is_finite():
        raise ValueError(f'{brief(amount)} is not an amount; write it like "20.00"')
    places = exponent(currency)
    if value and value.adjusted() + places >= MAX_MINOR_DIGITS:
        raise ValueError(f"{shown} is too large for an amount")
    # Enough precision for every digit: the default context (28 digits) would round
    # 0.1000000000000000000000000000001 to a whole number of cents.
    exact = Context(prec=len(value.as_tuple().digits) + places + 1, Emin=MIN_EMIN, Emax=MAX_EMAX)
    scaled = value.scaleb(places, exact)
    if scaled != scaled.to_integral_value(context=exact):
        raise ValueError(f"{shown} has more than {places} decimal places for {currency}")
    return int(scaled)


def format_minor(minor: int, currency: str) -> str:
    """Render minor units as a plain decimal string ("20.00"), exactly at any size."""
    places = exponent(currency)
    whole, part = divmod(abs(minor), 10**places)
    sign = "-" if minor < 0 else ""
    return f"{sign}{whole}.{part:0{places}d}" if places else f"{sign}{whole}"


@dataclass(frozen=True, slots=True)
class Money:
    minor: int
    currency: str

    def __str__(self) -> str:
        return f"{format_minor(self.minor, self.currency)} {self.currency}"
