"""The bot's money text shows the decimals of the ISO 4217 table, in every locale.

Babel dresses the number (symbol, grouping, decimal separator); how many decimals an
amount has comes from ``funnels.kernel.money.EXPONENTS``, never from Babel.
"""

from __future__ import annotations

import re

import pytest
from babel import Locale
from babel.numbers import (
    format_currency,
    get_currency_precision,
    get_decimal_symbol,
    get_group_symbol,
)

from bot.telegram import i18n
from bot.telegram.i18n import SUPPORTED, Catalog
from funnels.kernel.money import EXPONENTS

# The codes whose decimals Babel (CLDR) gives differently from ISO 4217, found by
# comparing the tables, not by hand:
#     sorted(c for c in EXPONENTS if get_currency_precision(c) != EXPONENTS[c])
# With Babel 2.18.0 there are 13, and CLDR shows every one of them with no decimals:
# rendering them with Babel's digits showed amounts 100 times (1000 for IQD) too large.
# CLF and UYW (4 decimals) Babel has right; the old table of exceptions had them at 2,
# which showed them 100 times too small. That makes 15 codes that were shown wrong.
BABEL_DISAGREES = [
    "AFN",
    "ALL",
    "IQD",
    "IRR",
    "KPW",
    "LAK",
    "LBP",
    "MGA",
    "MMK",
    "RSD",
    "SOS",
    "SYP",
    "YER",
]


def plain(text: str, locale: str) -> str:
    """The one number in ``text``, as "1234.56": group marks dropped, "." for decimals."""
    babel = Locale.parse(locale, sep="-")
    group, point = get_group_symbol(babel), get_decimal_symbol(babel)
    numbers = re.findall(rf"\d(?:[\d{re.escape(group + point)}]*\d)?", text)
    assert len(numbers) == 1, text
    return numbers[0].replace(group, "").replace(point, ".")


def expected(minor: int, places: int) -> str:
    whole, part = divmod(minor, 10**places)
    return f"{whole}.{part:0{places}d}" if places else str(whole)


def test_babel_disagrees_with_iso_exactly_where_listed() -> None:
    found = sorted(c for c in EXPONENTS if get_currency_precision(c) != EXPONENTS[c])
    assert found == BABEL_DISAGREES, "Babel's currency digits changed: update the list"


@pytest.mark.parametrize("code", sorted(EXPONENTS))
def test_every_currency_shows_its_iso_decimals_in_every_locale(catalog: Catalog, code: str) -> None:
    places = EXPONENTS[code]
    for locale in SUPPORTED:
        for minor in (123_456, 5, 100_000_000):
            text = catalog.money(locale, minor, code)
            assert plain(text, locale) == expected(minor, places), (locale, text)


@pytest.mark.parametrize("code", BABEL_DISAGREES)
def test_where_babel_disagrees_the_table_wins(catalog: Catalog, code: str) -> None:
    for locale in SUPPORTED:
        text = catalog.money(locale, 123_456, code)
        assert plain(text, locale) == expected(123_456, EXPONENTS[code])
        # Babel left to itself would show the minor units as whole units.
        babel = Locale.parse(locale, sep="-")
        assert plain(format_currency(123_456, code, locale=babel), locale) == "123456"


@pytest.mark.parametrize(
    ("locale", "code", "shown"),
    [
        ("en", "IQD", "IQD123.456"),
        ("es", "IQD", "123,456\xa0IQD"),
        ("zh-CN", "IQD", "IQD123.456"),
        ("en", "RSD", "RSD1,234.56"),
        ("es", "RSD", "1.234,56\xa0RSD"),
        ("zh-CN", "LBP", "LBP1,234.56"),
        ("en", "CLF", "CLF12.3456"),
        ("es", "CLF", "12,3456\xa0CLF"),
        ("zh-CN", "UYW", "UYW12.3456"),
        ("en", "KWD", "KWD123.456"),
        ("zh-CN", "JPY", "JP¥123,456"),
        ("es", "XCG", "1.234,56\xa0Cg."),  # new in 2025; Babel knows its symbol
        ("es", "ZWG", "1.234,56\xa0ZWG"),  # new in 2024; no Spanish symbol yet
    ],
)
def test_money_text(catalog: Catalog, locale: str, code: str, shown: str) -> None:
    assert catalog.money(locale, 123_456, code) == shown


def test_negative_and_lower_case_amounts(catalog: Catalog) -> None:
    assert catalog.money("en", -123_456, "iqd") == "-IQD123.456"
    assert catalog.money("es", -5, "CLF") == "-0,0005\xa0CLF"


def test_a_code_outside_the_table_still_renders_with_two_decimals(catalog: Catalog) -> None:
    # Scripts refuse such codes; a row stored before that check must not break a reply.
    assert catalog.money("en", 1234, "ABC") == "ABC12.34"


def test_formatted_amounts_are_remembered(catalog: Catalog) -> None:
    # The tap path leans on this cache: a crowd hears the same few amounts many times.
    catalog.money("zh-CN", 424_242, "IQD")
    hits = i18n._money.cache_info().hits
    assert catalog.money("zh-CN", 424_242, "IQD") == "IQD424.242"
    assert i18n._money.cache_info().hits == hits + 1
