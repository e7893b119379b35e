"""Money, durations, stages and the manual clock: the small types everything leans on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from funnels.kernel import money
from funnels.kernel.clock import ManualClock
from funnels.kernel.durations import format_duration, parse_duration
from funnels.kernel.money import (
    EXPONENTS,
    MAX_EXPONENT,
    currency_problem,
    exponent,
    format_minor,
    to_minor,
    valid_currency,
)
from funnels.kernel.stages import Role, Stage, advance, promote


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("20.00", "CNY", 2000),
        ("0.05", "CNY", 5),
        ("7", "USD", 700),
        ("1500", "JPY", 1500),
        ("1.234", "KWD", 1234),
        (" 12.50 ", "CNY", 1250),
        ("１２", "CNY", 1200),  # full-width digits, as a CJK keyboard types them
    ],
)
def test_to_minor_exact(amount: str, currency: str, minor: int) -> None:
    assert to_minor(amount, currency) == minor
    assert to_minor(format_minor(minor, currency), currency) == minor


@pytest.mark.parametrize(
    "bad",
    ["0.001", "abc", "NaN", "1e400x", "1e9", "1E3", "1_000", ".5", "5.", "Infinity", "", "0x10"],
)
def test_to_minor_refuses_inexact_or_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        to_minor(bad, "CNY")


def test_durations_round_trip() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2d") == timedelta(days=2)
    assert parse_duration(45) == timedelta(seconds=45)
    assert format_duration(timedelta(hours=24)) == "1d"
    assert format_duration(timedelta(minutes=90)) == "1h30m"
    for bad in ("", "10", "5 minutes", "-1m"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_stages_only_move_forward() -> None:
    assert advance(Stage.REPLIED, Stage.ENGAGED) is Stage.REPLIED
    assert advance(Stage.REPLIED, Stage.SOLD) is Stage.SOLD
    assert promote(Role.SUPERVISOR, Role.SHOPKEEPER) is Role.SUPERVISOR
    assert Stage.parse("admitted") is Stage.ADMITTED
    with pytest.raises(ValueError, match="one of joined"):
        Stage.parse("graduated")


def test_manual_clock_never_goes_back() -> None:
    clock = ManualClock(datetime(2026, 1, 5, tzinfo=UTC))
    clock.advance(timedelta(hours=1))
    assert clock.now() == datetime(2026, 1, 5, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        clock.set(datetime(2026, 1, 5, tzinfo=UTC))
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 1, 5))  # noqa: DTZ001 - the point of the test


# ---------------------------------------------------------------- huge amounts and durations


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("9" * 400, "999999999999999999999999999999999999... is too large for an amount"),
        ("1" + "0" * 18, "1000000000000000000 is too large for an amount"),
        ("1e999999", "'1e999999' is not an amount"),
        ("0.1000000000000000000000000000001", "has more than 2 decimal places for EUR"),
        ("Infinity", "'Infinity' is not an amount"),
    ],
)
def test_to_minor_refuses_huge_or_overprecise_amounts_with_a_message(
    amount: str, message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        to_minor(amount, "EUR")
    assert message in str(caught.value)
    assert len(str(caught.value)) < 120


def test_to_minor_keeps_every_digit_up_to_64_bits() -> None:
    # The default decimal context (28 digits) would round these; minor units are exact.
    assert to_minor("9999999999999999.99", "EUR") == 999_999_999_999_999_999
    assert to_minor("1.000000000000000000000000000000", "EUR") == 100
    with pytest.raises(ValueError, match="too large"):
        to_minor("99999999999999999.99", "EUR")


def test_format_minor_is_exact_at_any_size() -> None:
    assert format_minor(10**30 + 5, "EUR") == "1" + "0" * 28 + ".05"
    assert format_minor(-5, "EUR") == "-0.05"
    assert format_minor(7, "JPY") == "7"
    assert format_minor(1234, "KWD") == "1.234"


def test_durations_too_long_are_refused_with_a_message() -> None:
    for text in ("99999999999d", "9" * 5000 + "s", 10**30):
        with pytest.raises(ValueError, match="is too long; at most 999999999d23h59m59s"):
            parse_duration(text)
    with pytest.raises(ValueError, match=r"^the duration 367d is too long; at most 366d$"):
        parse_duration("367d", longest=timedelta(days=366))
    assert parse_duration("366d", longest=timedelta(days=366)) == timedelta(days=366)
    assert parse_duration("0" * 5000 + "1s") == timedelta(seconds=1)
    assert format_duration(timedelta.max) == "999999999d23h59m59s"


# ---------------------------------------------------------------- the ISO 4217 table


def test_the_currency_table_is_iso_4217_list_one() -> None:
    # 165 active codes with a minor unit (List One published 2026-01-01), each once.
    groups = [codes.split() for codes in money._CODES_BY_EXPONENT.values()]
    assert sum(len(g) for g in groups) == len(EXPONENTS) == 165
    assert all(len(c) == 3 and c.isascii() and c.isalpha() and c.isupper() for c in EXPONENTS)
    by_exponent = {
        p: " ".join(sorted(c for c in EXPONENTS if EXPONENTS[c] == p)) for p in (0, 3, 4)
    }
    assert by_exponent == {
        0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
        3: "BHD IQD JOD KWD LYD OMR TND",
        4: "CLF UYW",
    }
    assert MAX_EXPONENT == 4
    # Withdrawn codes and codes with no minor unit are not currencies here.
    for code in ("HRK", "SLL", "ANG", "ZWL", "XTS", "XXX", "XAU", "XDR"):
        assert code not in EXPONENTS


@pytest.mark.parametrize("code", sorted(EXPONENTS))
def test_every_currency_round_trips_at_its_exponent(code: str) -> None:
    places = EXPONENTS[code]
    assert exponent(code) == exponent(code.lower()) == places
    for minor in (0, 1, -7, 123_456, 10**17 + 3):
        text = format_minor(minor, code)
        _whole, point, part = text.partition(".")
        assert len(part) == places and bool(point) == bool(places)
        assert to_minor(text, code) == minor
    # One digit finer than the minor unit is refused, naming the places allowed.
    with pytest.raises(ValueError, match=f"more than {places} decimal places for {code}"):
        to_minor("1." + "0" * places + "1", code)


def test_iso_exponents_where_babel_and_the_old_table_were_wrong() -> None:
    assert to_minor("1.234", "IQD") == 1234  # Babel: no decimals
    assert to_minor("12.34", "RSD") == 1234  # Babel: no decimals
    assert to_minor("1.2345", "CLF") == 12345  # the old table: 2 decimals
    assert format_minor(12345, "UYW") == "1.2345"
    assert format_minor(12345, "MGA") == "123.45"  # ISO says 2, though 1 ariary = 5 iraimbilanja


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("ABC", "'ABC' is not an ISO 4217 currency code such as CNY, EUR or MXN"),
        ("usd", "'usd' is not an ISO 4217 currency code; write it in capitals: USD"),
        ("Eur", "'Eur' is not an ISO 4217 currency code; write it in capitals: EUR"),
        ("XTS", "'XTS' is an ISO 4217 code with no minor unit (a test code, a metal or a unit"),
        ("XXX", "not a currency anyone can be paid in; use one such as CNY, EUR or MXN"),
        ("xau", "'xau' is an ISO 4217 code with no minor unit"),
        ("HRK", "'HRK' is not an ISO 4217 currency code such as"),  # withdrawn in 2023
        ("", "'' is not an ISO 4217 currency code such as"),
        (" USD", "' USD' is not an ISO 4217 currency code such as"),
        ("US$" * 30, "'US$US$US$US$US$US$US$US$US$US$US$US$... is not an ISO 4217"),
    ],
)
def test_a_code_outside_the_table_is_refused_with_the_form_allowed(code: str, problem: str) -> None:
    found = currency_problem(code)
    assert found is not None and problem in found
    assert not valid_currency(code)


def test_every_code_in_the_table_is_a_currency() -> None:
    assert all(currency_problem(code) is None and valid_currency(code) for code in EXPONENTS)
