"""Money as an integer count of minor units with a currency; never a float.

:data:`EXPONENTS` is the project's one table of decimal places: scripts are checked
against it, amounts are parsed and printed with it, and the bot renders amounts with as
many decimals as it says. A second table anywhere else is a bug.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, InvalidOperation
from types import MappingProxyType

from funnels.kernel.text import brief, cut

# Every active code of ISO 4217 List One (published 2026-01-01) that has a minor unit,
# grouped by its exponent: the number of decimal places of the minor unit. Withdrawn
# codes (HRK, SLL, ANG, ZWL...) are not here. Where Babel (CLDR) disagrees, as it does
# for IQD, RSD, LBP and others that it shows without decimals, ISO wins: the platform
# counts and pays in ISO minor units, so 1 IQD is 1000 minor units whatever CLDR says.
_CODES_BY_EXPONENT: Mapping[int, str] = {
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    2: """
        AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD BTN BWP BYN
        BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD
        FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW
        KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR
        MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG
        SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD
        USN UYU UZS VED VES WST XAD XCD XCG YER ZAR ZMW ZWG
    """,
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
}

EXPONENTS: Mapping[str, int] = MappingProxyType(
    {code: places for places, codes in _CODES_BY_EXPONENT.items() for code in codes.split()}
)
"""ISO 4217 code -> decimal places of its minor unit (CNY: 2, JPY: 0, KWD: 3, CLF: 4)."""

MAX_EXPONENT = max(EXPONENTS.values())

# The ISO 4217 codes whose minor unit is "N.A.": precious metals, bond-market units of
# account, the SDR, the Sucre, the ADB unit, the testing code XTS and XXX for "no
# currency". Nobody can be paid in them, so they are refused with their own message.
_NOT_PAYABLE = frozenset(
    {"XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA", "XXX"}
)

_EXAMPLES = "such as CNY, EUR or MXN"


def exponent(currency: str) -> int:
    """Number of decimal places in the currency's minor unit (CNY: 2, JPY: 0).

    Codes outside :data:`EXPONENTS` never enter through a script (see
    :func:`currency_problem`); for them (a blank currency in a report over no cohort)
    the answer is the usual 2, so that printing never fails.
    """
    return EXPONENTS.get(currency.upper(), 2)


def valid_currency(currency: str) -> bool:
    """Whether ``currency`` is an ISO 4217 code in :data:`EXPONENTS`, written in capitals."""
    return currency in EXPONENTS


def currency_problem(currency: str) -> str | None:
    """Why ``currency`` cannot be a budget's currency, or None when it can."""
    if currency in EXPONENTS:
        return None
    code = currency.upper()
    if code in EXPONENTS:
        return f"{brief(currency)} is not an ISO 4217 currency code; write it in capitals: {code}"
    if code in _NOT_PAYABLE:
        return (
            f"{brief(currency)} is an ISO 4217 code with no minor unit (a test code, a metal or "
            f"a unit of account), not a currency anyone can be paid in; use one {_EXAMPLES}"
        )
    return f"{brief(currency)} is not an ISO 4217 currency code {_EXAMPLES}"


_PLAIN = re.compile(r"[+-]?\d+(\.\d+)?")
"""An amount as people write one: digits, and decimals after a point (a sign is read,
so that a negative amount is refused by what it means rather than how it is written).
Digits of any script count: full-width ones typed on a CJK keyboard read as what they
say."""

MAX_MINOR_DIGITS = 18
"""Most digits of an amount in minor units: it must fit a signed 64-bit column."""


def to_minor(amount: str | Decimal | int, currency: str) -> int:
    """Parse a decimal amount ("20.00") into minor units, refusing sub-minor precision.

    Raises ``ValueError`` with a readable message for anything that is not an exact amount.
    """
    shown = cut(str(amount))
    if isinstance(amount, str) and not _PLAIN.fullmatch(amount.strip()):
        # Decimal would also read "1e9", "1_000", ".5" and "Infinity": not how anyone
        # writes an amount on purpose, and a typo away from a very different one.
        raise ValueError(f'{brief(amount)} is not an amount; write it like "20.00"')
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
