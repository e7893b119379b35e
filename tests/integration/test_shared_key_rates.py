"""API key rates counted in a real Redis: a key gets its rate across all the processes
that share it, not that rate in each; a Redis out of reach leaves each process counting
alone, saying so once (gone and back: tests/integration/test_redis_outage.py; through
two apps: tests/integration/test_figures_board.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.http.problems import ApiProblem
from bot.http.rates import SharedKeyRates


@pytest.fixture
async def two(redis_url: str) -> AsyncIterator[tuple[SharedKeyRates, SharedKeyRates]]:
    """Two processes' rates (each with its own client) on one Redis: 5 a second, in
    bursts of 10."""
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    yield SharedKeyRates(first, 5), SharedKeyRates(second, 5)
    await first.aclose()
    await second.aclose()


async def test_a_key_gets_one_burst_and_one_rate_across_processes(
    two: tuple[SharedKeyRates, SharedKeyRates],
) -> None:
    a, b = two
    for _ in range(5):  # the burst of 10, half in each process
        assert await a.wait(1) == 0.0
        assert await b.wait(1) == 0.0
    waits = [await a.wait(1), await b.wait(1)]
    assert all(0 < w <= 0.2 for w in waits), waits  # counted in each process: 20 would pass
    assert await b.wait(2) == 0.0  # another key has its own
    await asyncio.sleep(max(waits) + 0.05)
    assert await b.wait(1) == 0.0  # a fifth of a second later, one more
    assert await a.wait(1) > 0  # and only one


async def test_a_refusal_takes_nothing_and_says_when_to_come_back(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    slow = SharedKeyRates(client, 0.5)  # a burst of 1
    try:
        await slow.check(7, "ops-sea")
        waits = []
        for _ in range(3):
            with pytest.raises(ApiProblem) as refused:
                await slow.check(7, "ops-sea")
            assert refused.value.status == 429
            assert refused.value.headers == {"Retry-After": "2"}
            assert "ops-sea may make 0.5 requests a second" in refused.value.detail
            waits.append(await slow.wait(7))
        assert waits == sorted(waits, reverse=True)  # refusals do not push it later
    finally:
        await client.aclose()


async def test_without_redis_each_process_counts_alone_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    gone = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    rates = SharedKeyRates(gone, 1)  # bursts of 2
    try:
        assert [await rates.wait(3) for _ in range(2)] == [0.0, 0.0]
        assert await rates.wait(3) > 0  # still limited, in this process
    finally:
        await gone.aclose()
    assert caplog.text.count("API key rates are counted per process") == 1
