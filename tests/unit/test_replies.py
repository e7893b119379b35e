"""Unit tests for funnels.scripts.replies: only a message that is the answer counts.

Full-width forms are written as escapes (\\uff11 is the full-width 1, \\uff01 the
full-width "!") so that a reader can tell them from their ASCII look-alikes.
"""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from funnels.scripts.replies import MAX_ANSWER_LENGTH, ReplyMatcher, is_answer, normalize

ONE = ["1"]
PITCH_FORMS = ["1", "\uff11", "一"]


@pytest.mark.parametrize(
    "text",
    [
        "1",
        " 1 ",
        "\uff11",
        "1️⃣",
        "1\u20e3",
        "1.",
        "1!",
        "1。",
        "\uff11\uff01",
        "【1】",
        "*1*",
        "\t1\n",
        "1\u200b",
        "\u200b1",
        "\ufeff1",
        "「1」",
        "(1)",
        "\uff08\uff11\uff09",
        "①",
        "1\uff5e",
        "1!!!",
        "« 1 »",
        "1 。",
    ],
)
def test_spellings_of_the_answer_match(text: str) -> None:
    assert is_answer(text, ONE)


@pytest.mark.parametrize(
    "text",
    ["10", "11", "1 2", "I want 1", "1 please", "21", "", " ", "!", "1️⃣1️⃣", "12", "1a", "a1", "一"],
)
def test_anything_else_does_not(text: str) -> None:
    assert not is_answer(text, ONE)


def test_chinese_one_counts_only_when_accepted() -> None:
    assert not is_answer("一", ["1"])
    assert is_answer("一", PITCH_FORMS)
    assert is_answer("一\uff01", PITCH_FORMS)
    assert is_answer("【一】", PITCH_FORMS)
    assert not is_answer("一一", PITCH_FORMS)


def test_accepted_forms_are_normalized_too() -> None:
    # A script listing the full-width form only still accepts the ASCII one, and back.
    assert is_answer("1", ["\uff11"])
    assert is_answer("\uff11", ["1️⃣"])
    assert is_answer(" 1 ", [" 1. "])


def test_case_is_folded() -> None:
    assert is_answer("Uno!", ["uno"])
    assert is_answer("UNO", ["Uno"])
    assert is_answer("ja", ["JA"])
    assert not is_answer("unos", ["uno"])


def test_long_messages_are_never_answers() -> None:
    padded = " " * MAX_ANSWER_LENGTH + "1"
    assert len(padded) == MAX_ANSWER_LENGTH + 1
    assert not is_answer(padded, ONE)
    exactly = " " * (MAX_ANSWER_LENGTH - 1) + "1"
    assert is_answer(exactly, ONE)


def test_normalize_examples() -> None:
    assert normalize("\uff11\uff01") == "1"
    assert normalize("1️⃣") == "1"
    assert normalize("【Uno】") == "uno"
    assert normalize("1 2") == "1 2"
    assert normalize("  ") == ""


def test_matcher_caches_the_folded_forms_and_drops_empty_ones() -> None:
    matcher = ReplyMatcher(["1", "\uff11", " 1️⃣ ", "一", "!!", ""])
    assert matcher.accepted == frozenset({"1", "一"})
    assert matcher("\uff11")
    assert not matcher("")
    assert not matcher("!!")
    assert not matcher("2")


def test_matcher_with_no_usable_forms_matches_nothing() -> None:
    matcher = ReplyMatcher(["。", " "])
    assert matcher.accepted == frozenset()
    assert not matcher("")
    assert not matcher("。")


def test_is_answer_takes_any_sequence() -> None:
    assert is_answer("1", ("1",))
    assert is_answer("yes", ["no", "yes"])


@given(st.text(max_size=40))
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@given(st.integers(min_value=2, max_value=10**6))
def test_no_other_number_matches_one(n: int) -> None:
    assert not is_answer(str(n), PITCH_FORMS)
    assert not is_answer(f"{n}!", PITCH_FORMS)
