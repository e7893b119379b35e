"""The event applier's turns, with a stand-in for applying: acknowledging goes first.

It applies in the pauses between stores, steps aside when they resume, and only once a
store has waited the lag does it go on while they keep coming, taking turns with them.
(No database: what it would apply is a counter.)
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from types import SimpleNamespace

import pytest

from bot.http import events
from bot.http.events import EventApplier, RewardTeller
from funnels.kernel.messaging import RewardNotice
from funnels.kernel.records import MemberRef
from funnels.ladder.events import IngestResult
from tests.support.loopback import seconds_taken

LAG = 0.6
QUIET = 0.05
BATCH = 10
WORK = 0.02
"""Seconds one stand-in transaction takes."""


class Backlog:
    """Stands in for ApplyEvents: ``pending`` events, applied ``limit`` at a time; each
    call takes :data:`WORK` seconds and is logged as (start, end, limit, applied). The
    first ``held`` calls find every member in another process's hands: nothing applied,
    all of them left pending (deferred)."""

    def __init__(self, pending: int, held: int = 0, *, rewarding: bool = False) -> None:
        self.pending = pending
        self.held = held
        self.rewarding = rewarding
        """Each event applied finishes a task: one notice for its member."""
        self.calls: list[tuple[float, float, int, int]] = []

    async def __call__(
        self,
        ids: Sequence[int] | None = None,
        limit: int = 500,
        received_before: datetime | None = None,
        *,
        least: int | None = None,
    ) -> IngestResult:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(WORK)
        if self.held:
            self.held -= 1
            self.calls.append((start, loop.time(), limit, 0))
            return IngestResult(applied=0, deferred=min(self.pending, limit))
        applied = min(self.pending, limit)
        first = self.applied
        self.pending -= applied
        self.calls.append((start, loop.time(), limit, applied))
        notices = [(member(first + n), notice()) for n in range(applied)] if self.rewarding else []
        return IngestResult(applied=applied, notices=notices)

    @property
    def applied(self) -> int:
        return sum(c[3] for c in self.calls)


def member(n: int) -> MemberRef:
    return MemberRef(n + 1, 1000 + n, "en")


def notice() -> RewardNotice:
    return RewardNotice("invite_fans", "Invite fans", 50, "CNY", None, "en")


class Gate:
    """Stands in for the messenger: each notice waits until the gate opens."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.told: list[int] = []

    async def notify(self, member: MemberRef, message: object) -> bool:
        await self.open.wait()
        self.told.append(member.user_id)
        return True


def gated(applier: EventApplier) -> Gate:
    gate = Gate()
    applier.teller = RewardTeller(SimpleNamespace(messenger=gate))  # type: ignore[arg-type]
    return gate


async def nothing_pending() -> bool:
    """Stands in for the look at the queue: no other process has events pending."""
    return False


@pytest.fixture
async def applier(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[EventApplier]:
    monkeypatch.setattr(events, "APPLY_LAG", LAG)
    monkeypatch.setattr(events, "APPLY_QUIET", QUIET)
    applier = EventApplier(None, batch=BATCH)  # type: ignore[arg-type]
    applier._pending = nothing_pending  # type: ignore[method-assign]
    yield applier
    await applier.stop(grace=1.0)


def backlog(applier: EventApplier, pending: int) -> Backlog:
    stand_in = Backlog(pending)
    applier._apply = stand_in  # type: ignore[assignment]
    return stand_in


async def test_a_pause_in_the_stores_gets_everything_applied(applier: EventApplier) -> None:
    work = backlog(applier, 95)
    applier.wake()
    applier.start()

    await asyncio.sleep(QUIET + 20 * WORK)

    assert work.pending == 0
    # No one waiting: fuller transactions, back to back.
    assert {limit for _, _, limit, _ in work.calls} == {events.QUIET_BATCHES * BATCH}


async def test_nothing_is_applied_while_a_store_is_in_progress_until_the_lag(
    applier: EventApplier,
) -> None:
    work = backlog(applier, 10_000)
    loop = asyncio.get_running_loop()
    with applier.storing():  # a store that is taking its time: no pause in the stores
        applier.wake()
        began = loop.time()
        applier.start()
        await asyncio.sleep(LAG / 2)
        assert work.calls == []

        await asyncio.sleep(LAG / 2 + 20 * WORK)

        # Overdue: it goes on, in short transactions, each followed by as long for the
        # requests.
        assert work.calls
        assert work.calls[0][0] >= began + LAG
        assert {limit for _, _, limit, _ in work.calls} == {BATCH}
        gaps = [
            (nxt[0] - end, end - start)
            for (start, end, _, _), nxt in zip(work.calls, work.calls[1:], strict=False)
        ]
        assert gaps
        assert all(gap >= took * 0.9 for gap, took in gaps)


async def test_stores_coming_back_send_the_applier_aside(applier: EventApplier) -> None:
    work = backlog(applier, 10_000)
    applier.wake()
    applier.start()
    await asyncio.sleep(QUIET + 5 * WORK)
    assert work.calls  # the pause is used

    with applier.storing():
        await asyncio.sleep(WORK * 2)  # the transaction in hand finishes
        before = len(work.calls)
        await asyncio.sleep(LAG / 3)
        # Stepped aside: the stores go first while nothing is overdue.
        assert len(work.calls) == before

    await asyncio.sleep(QUIET + 5 * WORK)
    assert len(work.calls) > before  # back at it in the next pause


async def test_the_lag_counts_from_the_oldest_store_not_applied(applier: EventApplier) -> None:
    """A store, a burst long enough to send the applier aside, another burst: the
    applier goes on during the second one once the first store is overdue, though each
    burst alone is shorter than the lag."""
    work = backlog(applier, 10_000)
    loop = asyncio.get_running_loop()
    applier.start()
    await asyncio.sleep(QUIET * 3)  # the start-up round: nothing was pending
    work.calls.clear()
    first = loop.time()
    with applier.storing():
        applier.wake()
        await asyncio.sleep(LAG * 0.6)
    await asyncio.sleep(QUIET + 3 * WORK)  # a pause: some applied
    during_pause = len(work.calls)
    assert during_pause
    with applier.storing():
        applier.wake()
        await asyncio.sleep(LAG * 0.6)
        late = [c for c in work.calls[during_pause:] if c[0] >= first + LAG]

    assert late, "nothing applied during the second burst, though the first store was overdue"


async def test_the_applier_stops_between_two_transactions(applier: EventApplier) -> None:
    work = backlog(applier, 10_000)
    applier.wake()
    applier.start()
    await asyncio.sleep(QUIET + 3 * WORK)

    await applier.stop(grace=1.0)
    stopped = len(work.calls)
    await asyncio.sleep(5 * WORK)

    assert len(work.calls) == stopped
    assert work.pending > 0  # left pending, for the next start or the tick


async def test_far_behind_it_catches_up_in_fuller_transactions_with_shorter_turns(
    applier: EventApplier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "CATCH_UP_AFTER", 2 * LAG)
    work = backlog(applier, 100_000)
    loop = asyncio.get_running_loop()
    with applier.storing():  # the stores never pause
        applier.wake()
        began = loop.time()
        applier.start()
        await asyncio.sleep(2 * LAG + 20 * WORK)

    overdue = [c for c in work.calls if c[0] < began + 2 * LAG]
    behind = [c for c in work.calls if c[0] >= began + 2 * LAG + WORK]
    assert overdue and behind
    assert {limit for _, _, limit, _ in overdue} == {BATCH}  # one lag behind: short turns
    assert {limit for _, _, limit, _ in behind} == {events.QUIET_BATCHES * BATCH}
    gaps = [(nxt[0] - end, end - start) for (start, end, _, _), nxt in itertools.pairwise(behind)]
    assert gaps
    # The requests still get a turn after each, half as long as the transaction.
    assert all(took * 0.4 <= gap < took * 0.9 for gap, took in gaps)


async def test_a_batch_left_whole_to_another_process_is_claimed_again(
    applier: EventApplier,
) -> None:
    """Not "nothing pending": those events are free once the other transaction ends,
    and no store is coming to wake the applier for them."""
    work = Backlog(30, held=3)
    applier._apply = work  # type: ignore[assignment]
    applier.wake()
    applier.start()

    await asyncio.sleep(QUIET + 20 * WORK)

    assert work.pending == 0
    assert [c[3] for c in work.calls] == [0, 0, 0, 30, 0]


async def test_applying_at_once_waits_out_a_batch_held_elsewhere(applier: EventApplier) -> None:
    work = Backlog(30, held=2)
    applier._apply = work  # type: ignore[assignment]

    assert await applier.apply_pending() == 30
    assert work.pending == 0


async def test_members_are_told_beside_the_next_batches(applier: EventApplier) -> None:
    """Telling a batch's members (at Telegram's pace, in the service) does not hold up
    the batches after it; every member is told, in the order the rewards committed."""
    work = Backlog(95, rewarding=True)
    applier._apply = work  # type: ignore[assignment]
    gate = gated(applier)
    applier.wake()
    applier.start()

    await asyncio.sleep(QUIET + 20 * WORK)

    assert work.pending == 0 and len(work.calls) >= 3
    assert gate.told == []  # every batch applied while the first notice still waits
    assert applier.teller.waiting == 94

    gate.open.set()
    await asyncio.wait_for(applier.teller.told(), 1.0)

    assert gate.told == [n + 1 for n in range(95)]


async def test_applying_at_once_returns_once_the_members_are_told(applier: EventApplier) -> None:
    work = Backlog(30, rewarding=True)
    applier._apply = work  # type: ignore[assignment]
    gate = gated(applier)
    asyncio.get_running_loop().call_later(5 * WORK, gate.open.set)

    assert await applier.apply_pending() == 30
    assert len(gate.told) == 30


async def test_a_stop_past_the_grace_drops_the_notices_not_sent_and_says_so(
    applier: EventApplier, caplog: pytest.LogCaptureFixture
) -> None:
    work = Backlog(25, rewarding=True)
    applier._apply = work  # type: ignore[assignment]
    gated(applier)  # never opens: Telegram does not answer
    applier.wake()
    applier.start()
    await asyncio.sleep(QUIET + 5 * WORK)
    assert work.pending == 0

    with caplog.at_level(logging.WARNING, logger="funnelbot.events"):
        await asyncio.wait_for(applier.stop(grace=3 * WORK), 1.0)

    assert "24 reward notices not sent" in caplog.text


async def test_a_notice_that_fails_is_logged_and_the_next_ones_are_sent(
    applier: EventApplier, caplog: pytest.LogCaptureFixture
) -> None:
    work = Backlog(3, rewarding=True)
    applier._apply = work  # type: ignore[assignment]
    gate = gated(applier)
    gate.open.set()
    failing = gate.notify

    async def notify(member: MemberRef, message: object) -> bool:
        if member.user_id == 2:
            raise RuntimeError("the messenger broke")
        return await failing(member, message)

    gate.notify = notify  # type: ignore[method-assign]

    with caplog.at_level(logging.ERROR, logger="funnelbot.events"):
        assert await applier.apply_pending() == 3

    assert gate.told == [1, 3]
    assert "telling member 2 of a reward failed" in caplog.text


async def test_settled_returns_at_once_when_nothing_is_stored(applier: EventApplier) -> None:
    assert await seconds_taken(applier.settled(5.0)) < 0.05


async def test_settled_waits_until_a_burst_is_applied(applier: EventApplier) -> None:
    work = backlog(applier, 95)
    applier.wake()
    applier.start()

    await applier.settled(5.0)

    assert work.pending == 0
    assert await seconds_taken(applier.settled(5.0)) < 0.05  # nothing left to wait for


async def test_a_store_while_applying_is_applied_before_it_settles(
    applier: EventApplier,
) -> None:
    work = backlog(applier, 95)
    applier.wake()
    applier.start()
    await asyncio.sleep(QUIET + 1.5 * WORK)  # the second transaction is under way
    assert 0 < work.applied < 95
    work.pending += 40  # stored meanwhile
    applier.wake()

    await applier.settled(5.0)

    assert work.pending == 0
    assert work.applied == 135


async def test_settled_waits_at_most_as_long_as_asked(applier: EventApplier) -> None:
    work = backlog(applier, 10_000)  # 20 s of stand-in transactions
    applier.wake()
    applier.start()
    waited = await seconds_taken(applier.settled(0.2))

    assert 0.2 <= waited < 0.4
    assert work.pending > 0


async def test_settled_waits_for_the_events_other_processes_apply(
    applier: EventApplier,
) -> None:
    looks = 0

    async def pending_a_while() -> bool:  # another process's burst, applied in 0.2 s
        nonlocal looks
        looks += 1
        return looks * events.SETTLE_POLL < 0.2

    applier._pending = pending_a_while  # type: ignore[method-assign]

    waited = await seconds_taken(applier.settled(5.0))

    assert 0.15 <= waited < 0.5
    assert looks == 4  # three looks found events pending, the fourth none


async def test_a_stopped_applier_is_settled(applier: EventApplier) -> None:
    backlog(applier, 10_000)
    applier.wake()
    applier.start()
    await asyncio.sleep(QUIET + WORK)
    await applier.stop(grace=1.0)
    assert await seconds_taken(applier.settled(5.0)) < 0.05


async def test_settled_stops_waiting_for_other_processes_when_the_applier_stops(
    applier: EventApplier,
) -> None:
    """A shutdown does not wait out another process's burst: a wait in progress ends
    when the applier stops, and a stopped applier does not look at the queue."""
    looks = 0

    async def always_pending() -> bool:
        nonlocal looks
        looks += 1
        return True

    applier._pending = always_pending  # type: ignore[method-assign]
    applier.start()
    waiting = asyncio.create_task(seconds_taken(applier.settled(5.0)))
    await asyncio.sleep(0.1)
    assert looks > 0 and not waiting.done()  # still waiting for the other's events
    await applier.stop(grace=1.0)
    assert await waiting < 0.3

    looks = 0
    assert await seconds_taken(applier.settled(5.0)) < 0.05
    assert looks == 0


async def test_the_end_of_a_backlog_is_shared(applier: EventApplier) -> None:
    work = backlog(applier, 95)
    applier.wake()
    applier.start()
    seen: list[int | None] = []
    inner = work.__call__

    async def noting(*args: object, least: int | None = None, **kw: object) -> IngestResult:
        seen.append(least)
        return await inner(*args, least=least, **kw)  # type: ignore[arg-type]

    applier._apply = noting  # type: ignore[assignment]
    await applier.settled(5.0)

    assert seen and set(seen) == {BATCH // 2}
