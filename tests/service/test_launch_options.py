"""Unit tests for what /launch reads after the command: a script's plain name, the
start date and the capacity in ASCII digits; anything else is a usage answer."""

from __future__ import annotations

from datetime import date

import pytest

from bot.telegram.routers.leader import _Usage, parse_launch
from bot.telegram.routers.refusals import MAX_CAPACITY
from funnels.scripts.library import is_script_name


@pytest.mark.parametrize("name", ["seven-plus-twentyone", "a", "A_1-b", "x" * 64])
def test_plain_names(name: str) -> None:
    assert is_script_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * 65,
        "a.b",
        "x.yaml",
        "../x",
        "~/x",
        "a/b",
        "/etc/passwd",
        "a\\b",
        "a\x00b",
        ".",
        "..",
        "a b",
        "脚本",
        "a\n",
    ],
)
def test_anything_path_like_is_not_a_name(name: str) -> None:
    assert not is_script_name(name)


def test_options_in_any_order() -> None:
    assert parse_launch(None) == (None, None, None, "requests")
    assert parse_launch("capacity=300 admission=personal start=2026-03-02 my_line") == (
        "my_line",
        date(2026, 3, 2),
        300,
        "personal",
    )
    assert parse_launch("admission=requests").admission == "requests"


@pytest.mark.parametrize(
    ("args", "key"),
    [
        ("/etc/passwd", "launch.bad_script_name"),
        ("x" * 4000, "launch.bad_script_name"),
        ("line.yaml", "launch.bad_script_name"),
        ("a b", "launch.bad_option"),
        ("colour=red", "launch.bad_option"),
        ("start=tomorrow", "launch.bad_date"),
        ("capacity=²", "launch.bad_capacity"),
        ("capacity=٣", "launch.bad_capacity"),
        ("capacity=0", "launch.bad_capacity"),
        (f"capacity={MAX_CAPACITY + 1}", "launch.bad_capacity"),
        ("capacity=" + "9" * 5000, "launch.bad_capacity"),
        ("admission=", "launch.bad_admission"),
        ("admission=Personal", "launch.bad_admission"),
        ("admission=personal,requests", "launch.bad_admission"),
        ("admission=invite", "launch.bad_admission"),
    ],
)
def test_bad_options(args: str, key: str) -> None:
    with pytest.raises(_Usage) as caught:
        parse_launch(args)
    assert caught.value.key == key


def test_what_is_quoted_back_is_short() -> None:
    with pytest.raises(_Usage) as caught:
        parse_launch("x" * 3000 + "=1")
    assert caught.value.params == {"option": "x" * 37 + "..."}
