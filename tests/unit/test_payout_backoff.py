"""The payout retry schedule: doubling from 30 s, capped at 6 h, shortened by jitter,
ending at the three days' mark, then parked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, strategies as st

from funnels.ladder.payouts import Backoff

T0 = datetime(2026, 3, 4, 1, 0, tzinfo=UTC)


def test_the_wait_doubles_from_thirty_seconds_up_to_the_cap() -> None:
    backoff = Backoff()
    waits = [backoff.delay(n, 0.0).total_seconds() for n in range(1, 13)]

    assert waits == [30, 60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 21600, 21600]
    assert backoff.delay(10_000, 0.0) == timedelta(hours=6)  # no overflow, still the cap


def test_jitter_shortens_the_wait_by_up_to_half() -> None:
    backoff = Backoff()

    assert backoff.delay(3, 0.0) == timedelta(minutes=2)
    assert backoff.delay(3, 0.5) == timedelta(seconds=90)
    assert backoff.delay(3, 0.999) > timedelta(minutes=1)
    assert backoff.delay(20, 0.999) > timedelta(hours=3)


@given(attempts=st.integers(1, 500), draw=st.floats(0, 1, exclude_max=True))
def test_every_wait_is_positive_and_never_past_the_cap(attempts: int, draw: float) -> None:
    wait = Backoff().delay(attempts, draw)
    assert timedelta(seconds=15) <= wait <= timedelta(hours=6)


def test_the_last_attempt_falls_at_three_days_and_then_the_row_is_parked() -> None:
    backoff = Backoff()
    at, attempts = T0, 1
    times = [at]
    while (following := backoff.next_attempt(attempts, T0, at, 0.0)) is not None:
        at, attempts = following, attempts + 1
        times.append(at)

    assert times[-1] == T0 + timedelta(days=3)
    assert all(b > a for a, b in pairwise(times))
    assert 15 < len(times) < 30  # a handful quickly, then every 6 hours
    assert backoff.next_attempt(attempts, T0, T0 + timedelta(days=3), 0.0) is None
    assert backoff.next_attempt(1, T0, T0 + timedelta(days=4), 0.0) is None


def test_a_wait_is_cut_short_at_the_end_of_the_window() -> None:
    backoff = Backoff()
    late = T0 + timedelta(days=3) - timedelta(hours=1)

    assert backoff.next_attempt(20, T0, late, 0.0) == T0 + timedelta(days=3)


@given(draws=st.lists(st.floats(0, 1, exclude_max=True), min_size=80, max_size=80))
def test_with_any_jitter_retries_stop_at_three_days(draws: list[float]) -> None:
    backoff = Backoff()
    at, n = T0, 1
    for draw in draws:
        following = backoff.next_attempt(n, T0, at, draw)
        if following is None:
            break
        assert at < following <= T0 + timedelta(days=3)
        at, n = following, n + 1
    assert at == T0 + timedelta(days=3)
