"""Per-key rate limits in one process: a token bucket per key, on a clock moved by hand
(shared through Redis: tests/integration/test_shared_key_rates.py)."""

from __future__ import annotations

import pytest

from bot.http.problems import ApiProblem
from bot.http.rates import KeyRates
from tests.support.ticks import Ticks


def test_a_key_gets_a_burst_of_twice_its_rate_then_its_rate() -> None:
    ticks = Ticks()
    rates = KeyRates(5, time_source=ticks)
    assert [rates.wait_here(1) for _ in range(10)] == [0.0] * 10  # a burst of 10
    assert rates.wait_here(1) == pytest.approx(0.2)  # one more token in a fifth of a second
    assert rates.wait_here(2) == 0.0  # another key has its own bucket
    ticks.now += 0.2
    assert rates.wait_here(1) == 0.0
    assert rates.wait_here(1) > 0
    ticks.now += 60  # a long pause refills the burst, never more
    assert [rates.wait_here(1) for _ in range(11)].count(0.0) == 10


async def test_a_refusal_is_a_429_problem_with_when_to_come_back() -> None:
    ticks = Ticks()
    rates = KeyRates(0.5, time_source=ticks)  # a burst of 1
    await rates.check(7, "ops-sea")
    with pytest.raises(ApiProblem) as refused:
        await rates.check(7, "ops-sea")
    problem = refused.value
    assert problem.status == 429 and problem.headers == {"Retry-After": "2"}
    assert "ops-sea may make 0.5 requests a second" in problem.detail


def test_no_rate_means_no_limit() -> None:
    rates = KeyRates(0)
    assert all(rates.wait_here(1) == 0.0 for _ in range(10_000))
