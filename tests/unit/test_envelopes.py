"""Unit tests for funnels.warmup.envelopes: exact, bounded, reproducible and fair splits."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, strategies as st

from funnels.warmup.envelopes import envelope_seed, luckiest, split


@st.composite
def envelopes(draw: st.DrawFn) -> tuple[int, int, int, int]:
    shares = draw(st.integers(min_value=1, max_value=300))
    min_share = draw(st.integers(min_value=0, max_value=500))
    extra = draw(st.integers(min_value=0, max_value=10**7))
    seed = draw(st.integers(min_value=0, max_value=2**64 - 1))
    return shares * min_share + extra, shares, min_share, seed


@given(envelopes())
def test_split_is_exact_bounded_and_sized(case: tuple[int, int, int, int]) -> None:
    total, shares, min_share, seed = case
    amounts = split(total, shares, min_share, random.Random(seed))
    assert len(amounts) == shares
    assert sum(amounts) == total
    assert min(amounts) >= min_share
    assert all(isinstance(a, int) for a in amounts)


@given(envelopes())
def test_same_seed_same_split(case: tuple[int, int, int, int]) -> None:
    total, shares, min_share, seed = case
    assert split(total, shares, min_share, random.Random(seed)) == split(
        total, shares, min_share, random.Random(seed)
    )


def test_different_seeds_usually_differ() -> None:
    splits = {tuple(split(2000, 30, 1, random.Random(seed))) for seed in range(20)}
    assert len(splits) == 20


def test_exact_minimum_leaves_no_randomness() -> None:
    assert split(300, 3, 100, random.Random(1)) == [100, 100, 100]


def test_one_share_takes_everything() -> None:
    assert split(2000, 1, 1, random.Random(7)) == [2000]


def test_huge_total_is_cheap_and_exact() -> None:
    amounts = split(10**15, 1000, 1, random.Random(3))
    assert sum(amounts) == 10**15
    assert min(amounts) >= 1


@pytest.mark.parametrize(
    ("total", "shares", "min_share", "message"),
    [
        (100, 0, 1, "at least 1 share"),
        (100, -2, 1, "at least 1 share"),
        (29, 30, 1, "only 29"),
        (2000, 30, 100, "need 3000"),
        (100, 3, -1, "negative"),
        (-1, 1, 0, "negative"),
    ],
)
def test_impossible_splits_are_refused(
    total: int, shares: int, min_share: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        split(total, shares, min_share, random.Random(0))


def test_position_does_not_matter() -> None:
    # Exchangeable shares: the first and the last grabber get the same mean (total/shares)
    # and nearly the same spread. Double-average schemes fail the spread check.
    rng = random.Random(12345)
    runs = 4000
    firsts: list[int] = []
    lasts: list[int] = []
    for _ in range(runs):
        amounts = split(1000, 10, 0, rng)
        firsts.append(amounts[0])
        lasts.append(amounts[-1])

    def mean(xs: list[int]) -> float:
        return sum(xs) / len(xs)

    def var(xs: list[int]) -> float:
        m = mean(xs)
        return sum((x - m) ** 2 for x in xs) / len(xs)

    assert abs(mean(firsts) - 100) < 5
    assert abs(mean(lasts) - 100) < 5
    assert 0.85 < var(firsts) / var(lasts) < 1.15


def test_every_composition_is_possible() -> None:
    # With 2 units over 2 shares and no minimum, (0,2), (1,1), (2,0) all occur.
    seen = {tuple(split(2, 2, 0, random.Random(seed))) for seed in range(200)}
    assert seen == {(0, 2), (1, 1), (2, 0)}


def test_envelope_seed_is_stable_and_distinct() -> None:
    seed = envelope_seed(42, "d1_envelope_noon")
    assert seed == envelope_seed(42, "d1_envelope_noon")
    assert seed != envelope_seed(43, "d1_envelope_noon")
    assert seed != envelope_seed(42, "d2_envelope_noon")
    assert 0 <= seed < 2**64


def test_envelope_seed_is_pinned() -> None:
    # hash() of a str changes with PYTHONHASHSEED; the seed must be the same value in every
    # process and release, or a re-split after a restart would change the shares.
    assert envelope_seed(42, "d1_env") == 13278460390012749570


def test_luckiest_picks_the_largest_and_the_first_on_ties() -> None:
    assert luckiest([3, 9, 1]) == 1
    assert luckiest([5, 9, 9, 2]) == 1
    assert luckiest([7]) == 0
    assert luckiest([4, 4, 4]) == 0


def test_luckiest_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        luckiest([])


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=50))
def test_luckiest_matches_max(amounts: list[int]) -> None:
    index = luckiest(amounts)
    assert amounts[index] == max(amounts)
    assert index == amounts.index(max(amounts))
