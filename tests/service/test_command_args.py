"""Unit tests for bot.command_args: numbers in commands are ASCII digits within bounds."""

from __future__ import annotations

import pytest

from bot.args import TELEGRAM_ID_LIMIT, ascii_int, telegram_user_id


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", 1), ("500", 500), ("200000", 200_000), ("007", 7), ("0000000000042", 42)],
)
def test_ascii_numbers_within_bounds_are_read(text: str, expected: int) -> None:
    assert ascii_int(text, high=200_000) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",  # below the lower bound of 1
        "200001",
        "9" * 5000,  # int() itself would refuse this many digits
        "²",  # a digit to str.isdigit, not to int()
        "٣",  # Arabic-Indic three: int() reads it as 3
        "３",  # fullwidth three
        "-5",
        "+5",
        " 5",
        "5 ",
        "1_000",
        "1e3",
        "5.0",
        "0x10",
    ],
)
def test_anything_else_is_not_a_number(text: str) -> None:
    assert ascii_int(text, high=200_000) is None


def test_the_lower_bound_can_be_zero() -> None:
    assert ascii_int("0", low=0, high=10) == 0
    assert ascii_int("11", low=0, high=10) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1),
        ("123456789", 123456789),
        (str(TELEGRAM_ID_LIMIT - 1), TELEGRAM_ID_LIMIT - 1),
        (str(TELEGRAM_ID_LIMIT), None),  # 53 significant bits: not a Telegram id
        (str(2**76), None),  # would overflow the BIGINT column
        ("0", None),
        ("-42", None),
        ("٣٣", None),
        ("²", None),
    ],
)
def test_telegram_user_ids(text: str, expected: int | None) -> None:
    assert telegram_user_id(text) == expected
