"""Group commit of envelope taps: taps arriving together share one write, a re-delivered
tap shares its first delivery's claim, and a failed write can be tried again."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from bot.telegram.batching import TapBatcher
from funnels.kernel.records import ShareClaim


class FakeClaims:
    def __init__(self, fail_first: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail_first = fail_first

    async def __call__(
        self, envelope_id: int, user_ids: Sequence[int], *, close: bool = True
    ) -> dict[int, ShareClaim]:
        self.batches.append(list(user_ids))
        await asyncio.sleep(0.01)  # the write takes a moment; more taps arrive meanwhile
        if self.fail_first and len(self.batches) == 1:
            raise RuntimeError("database unavailable")
        return {u: ShareClaim("claimed", 100 + u) for u in user_ids}


async def test_taps_arriving_together_are_written_in_one_batch() -> None:
    claims = FakeClaims()
    batcher = TapBatcher(claims)  # type: ignore[arg-type]
    results = await asyncio.gather(*(batcher.claim(7, u, f"q{u}") for u in range(50)))
    assert [r.amount_minor for r in results] == [100 + u for u in range(50)]
    assert claims.batches == [list(range(50))]


async def test_taps_during_a_write_go_into_the_next_batch() -> None:
    claims = FakeClaims()
    batcher = TapBatcher(claims)  # type: ignore[arg-type]
    first = asyncio.create_task(batcher.claim(7, 1, "q1"))
    await asyncio.sleep(0.001)  # the first batch is being written
    later = await asyncio.gather(*(batcher.claim(7, u, f"q{u}") for u in (2, 3)))
    assert (await first).amount_minor == 101
    assert [r.amount_minor for r in later] == [102, 103]
    assert claims.batches == [[1], [2, 3]]


async def test_a_redelivered_tap_shares_the_first_claim() -> None:
    claims = FakeClaims()
    batcher = TapBatcher(claims)  # type: ignore[arg-type]
    a, b = await asyncio.gather(batcher.claim(7, 5, "same"), batcher.claim(7, 5, "same"))
    assert a is b
    assert claims.batches == [[5]]


async def test_a_failed_write_fails_its_taps_and_can_be_tried_again() -> None:
    claims = FakeClaims(fail_first=True)
    batcher = TapBatcher(claims)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        await batcher.claim(7, 5, "q5")
    assert (await batcher.claim(7, 5, "q5")).outcome == "claimed"
    assert claims.batches == [[5], [5]]
