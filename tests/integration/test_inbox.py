"""The update inbox on SQLite and PostgreSQL: stored before it is confirmed, handled
once, failures recorded with their reason, left-overs handled at start-up in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from bot.telegram.inbox import LEASE, MAX_ATTEMPTS, Handlers, UpdateInbox
from bot.telegram.routers.envelopes import Tap
from funnels.kernel.clock import ManualClock
from storage.uow import SqlStore
from tests.support.stored import update_states

BOT = 4242
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
Json = dict[str, Any]


def message(update_id: int, text: str = "hi", person: int = 7) -> Json:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 0,
            "chat": {"id": -1001, "type": "supergroup", "title": "G"},
            "from": {"id": person, "is_bot": False, "first_name": "Ann"},
            "text": text,
        },
    }


def tap(update_id: int, query: str = "q1") -> Json:
    return {
        "update_id": update_id,
        "callback_query": {
            "id": query,
            "from": {"id": 7, "is_bot": False, "first_name": "Ann"},
            "chat_instance": "1",
            "data": "grab:5",
        },
    }


class Recorder:
    """Handlers that record what they get; ``react`` may wait or raise."""

    def __init__(self, react: Callable[[Json], Awaitable[None]] | None = None) -> None:
        self.handled: list[int] = []
        self.taps: list[Tap] = []
        self.deferred: set[int] = set()
        self._react = react

    async def update(self, update: Json) -> None:
        if self._react is not None:
            await self._react(update)
        self.handled.append(update["update_id"])

    async def tap(self, tap: Tap) -> None:
        self.taps.append(tap)

    def handlers(self) -> Handlers:
        return Handlers(update=self.update, tap=self.tap, deferred=self.deferred.__contains__)


async def settle(inbox: UpdateInbox) -> None:
    assert await inbox.drain(5.0)


async def test_a_batch_is_stored_handled_and_marked(store: SqlStore) -> None:
    recorder = Recorder()
    inbox = UpdateInbox(store, ManualClock(NOW), BOT, recorder.handlers())
    assert await inbox.accept([message(1), message(2), message(3)]) == 3
    await settle(inbox)
    assert sorted(recorder.handled) == [1, 2, 3]
    assert await update_states(store) == {i: ("handled", None) for i in (1, 2, 3)}


async def test_an_update_seen_before_is_not_handled_again(store: SqlStore) -> None:
    recorder = Recorder()
    inbox = UpdateInbox(store, ManualClock(NOW), BOT, recorder.handlers())
    await inbox.accept([message(1)])
    await settle(inbox)
    assert await inbox.accept([message(1), message(2)]) == 1  # Telegram sent 1 again
    await settle(inbox)
    assert recorder.handled == [1, 2]


async def test_concurrent_accepts_share_writes_and_lose_nothing(store: SqlStore) -> None:
    """The webhook's case: one update per request, many requests at once."""
    recorder = Recorder()
    inbox = UpdateInbox(store, ManualClock(NOW), BOT, recorder.handlers())
    counts = await asyncio.gather(*(inbox.accept([message(i)]) for i in range(1, 101)))
    assert counts == [1] * 100
    await settle(inbox)
    assert sorted(recorder.handled) == list(range(1, 101))
    assert set((await update_states(store)).values()) == {("handled", None)}


async def test_taps_are_handled_at_once_and_not_stored(store: SqlStore) -> None:
    recorder = Recorder()
    inbox = UpdateInbox(store, ManualClock(NOW), BOT, recorder.handlers())
    assert await inbox.accept([tap(1), message(2)]) == 1
    await settle(inbox)
    assert [(t.query_id, t.envelope_id, t.user.id) for t in recorder.taps] == [("q1", 5, 7)]
    assert recorder.handled == [2]
    assert set(await update_states(store)) == {2}


async def test_an_update_that_cannot_be_handled_is_failed_with_its_reason(
    store: SqlStore,
) -> None:
    async def react(update: Json) -> None:
        if update["message"]["text"] == "boom":
            raise ValueError("the handler broke")

    recorder = Recorder(react)
    inbox = UpdateInbox(store, ManualClock(NOW), BOT, recorder.handlers())
    await inbox.accept([message(1, "boom"), message(2)])
    await settle(inbox)
    assert recorder.handled == [2]
    assert await update_states(store) == {
        1: ("failed", "ValueError: the handler broke"),
        2: ("handled", None),
    }


async def test_a_passing_fault_leaves_the_update_for_the_tick(store: SqlStore) -> None:
    faults = [OperationalError("SELECT 1", {}, ConnectionError("connection lost"))]

    async def react(update: Json) -> None:
        if faults:
            raise faults.pop()

    clock = ManualClock(NOW)
    recorder = Recorder(react)
    inbox = UpdateInbox(store, clock, BOT, recorder.handlers())
    await inbox.accept([message(1)])
    await settle(inbox)
    assert (await update_states(store))[1][0] == "pending"
    assert await inbox.retry_stale() == 0  # still held: it may still be in hand
    clock.advance(LEASE + timedelta(seconds=1))
    assert await inbox.retry_stale() == 1
    assert recorder.handled == [1]
    assert (await update_states(store))[1] == ("handled", None)


def _first_fails(times: int) -> Callable[[Json], Awaitable[None]]:
    """Handling that loses its connection on update 1, ``times`` times."""
    faults = [OperationalError("INSERT", {}, ConnectionError("connection lost"))] * times

    async def react(update: Json) -> None:
        if update["update_id"] == 1 and faults:
            raise faults.pop()

    return react


async def test_a_persons_later_updates_wait_for_one_left_for_the_tick(store: SqlStore) -> None:
    """A join left pending by a passing fault: the "1" after it is not handled before
    it (it would find no member), nor are the person's later updates at the next try
    while the first still fails; another person's are handled at once."""
    clock = ManualClock(NOW)
    recorder = Recorder(_first_fails(2))
    inbox = UpdateInbox(store, clock, BOT, recorder.handlers())
    await inbox.accept([message(1, "joined"), message(2, "1"), message(3, "1", person=8)])
    await settle(inbox)
    assert recorder.handled == [3]
    states = await update_states(store)
    assert (states[1][0], states[2][0], states[3][0]) == ("pending", "pending", "handled")
    clock.advance(LEASE + timedelta(seconds=1))
    assert await inbox.retry_stale() == 0  # the join fails again: the "1" stays behind it
    assert recorder.handled == [3]
    clock.advance(LEASE + timedelta(seconds=1))
    assert await inbox.retry_stale() == 2
    assert recorder.handled == [3, 1, 2]
    assert set((await update_states(store)).values()) == {("handled", None)}


async def test_at_start_a_persons_left_overs_wait_behind_one_that_fails_again(
    store: SqlStore,
) -> None:
    crashed = UpdateInbox(store, ManualClock(NOW), BOT, Recorder(_never).handlers())
    await crashed.accept([message(1, "joined"), message(2, "1"), message(3, "1", person=8)])
    for task in list(crashed._in_hand.values()):
        task.cancel()
    recorder = Recorder(_first_fails(1))
    clock = ManualClock(NOW)
    restarted = UpdateInbox(store, clock, BOT, recorder.handlers())
    assert await restarted.recover() == 1
    assert recorder.handled == [3]
    clock.advance(LEASE + timedelta(seconds=1))
    assert await restarted.retry_stale() == 2
    assert recorder.handled == [3, 1, 2]


async def test_an_update_failing_again_and_again_is_given_up(store: SqlStore) -> None:
    async def react(update: Json) -> None:
        raise TimeoutError("Telegram does not answer")

    clock = ManualClock(NOW)
    inbox = UpdateInbox(store, clock, BOT, Recorder(react).handlers())
    await inbox.accept([message(1)])
    await settle(inbox)
    for _ in range(MAX_ATTEMPTS):
        clock.advance(LEASE + timedelta(seconds=1))
        await inbox.retry_stale()
    state, error = (await update_states(store))[1]
    assert state == "failed"
    assert error == "TimeoutError: Telegram does not answer"


async def test_left_overs_are_handled_at_start_oldest_first_one_at_a_time(
    store: SqlStore,
) -> None:
    crashed = UpdateInbox(store, ManualClock(NOW), BOT, Recorder(_never).handlers())
    await crashed.accept([message(i) for i in (5, 3, 4)])
    # The process died with all three in hand: nothing was marked.
    for task in list(crashed._in_hand.values()):
        task.cancel()
    running = 0
    peak = 0

    async def react(update: Json) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1

    recorder = Recorder(react)
    restarted = UpdateInbox(store, ManualClock(NOW), BOT, recorder.handlers())
    assert await restarted.recover() == 3
    assert recorder.handled == [3, 4, 5]
    assert peak == 1
    assert set((await update_states(store)).values()) == {("handled", None)}
    assert await restarted.recover() == 0


async def test_what_another_process_holds_is_left_to_it_until_its_lease_runs_out(
    store: SqlStore,
) -> None:
    clock = ManualClock(NOW)
    other = UpdateInbox(store, clock, BOT, Recorder(_never).handlers(), owner="host-a:8080")
    await other.accept([message(1), message(2)])  # in hand there, for as long as it lives
    recorder = Recorder()
    mine = UpdateInbox(store, clock, BOT, recorder.handlers(), owner="host-b:8080")
    assert await mine.recover() == 0
    assert await mine.retry_stale() == 0
    clock.advance(LEASE + timedelta(seconds=1))  # host-a died: nobody renews its hold
    assert await mine.retry_stale() == 2
    assert recorder.handled == [1, 2]
    for task in list(other._in_hand.values()):
        task.cancel()


async def _never(update: Json) -> None:
    await asyncio.Event().wait()


async def test_a_deferred_update_is_left_to_the_work_it_joined(store: SqlStore) -> None:
    recorder = Recorder()
    recorder.deferred.add(1)
    clock = ManualClock(NOW)
    inbox = UpdateInbox(store, clock, BOT, recorder.handlers())
    await inbox.accept([message(1), message(2)])
    await settle(inbox)
    assert await update_states(store) == {1: ("pending", None), 2: ("handled", None)}
    clock.advance(timedelta(minutes=5))
    assert await inbox.retry_stale() == 0  # still held: not handled twice


async def test_updates_of_another_bot_are_closed_at_start(store: SqlStore) -> None:
    other = UpdateInbox(store, ManualClock(NOW), 777, Recorder(_never).handlers())
    await other.accept([message(1)])
    for task in list(other._in_hand.values()):
        task.cancel()
    recorder = Recorder()
    mine = UpdateInbox(store, ManualClock(NOW), BOT, recorder.handlers())
    await mine.accept([message(1)])  # the same id, counted by another bot
    await settle(mine)
    assert recorder.handled == [1]
    await mine.recover()
    async with store.transaction() as tx:
        assert await tx.updates.counts(777) == {"failed": 1}
        assert await tx.updates.counts(BOT) == {"handled": 1}


async def test_old_updates_are_pruned(store: SqlStore) -> None:
    async def react(update: Json) -> None:
        if update["update_id"] == 2:
            raise ValueError("bad")

    clock = ManualClock(NOW)
    inbox = UpdateInbox(store, clock, BOT, Recorder(react).handlers())
    await inbox.accept([message(1), message(2)])
    await settle(inbox)
    clock.advance(timedelta(days=3))
    await inbox.accept([message(3)])
    await settle(inbox)
    assert await inbox.prune() == 1  # the handled one from three days ago
    assert set(await update_states(store)) == {2, 3}
    clock.advance(timedelta(days=14))
    assert await inbox.prune() == 2


async def test_a_batch_that_cannot_be_stored_raises_and_starts_nothing(
    store: SqlStore,
) -> None:
    recorder = Recorder()
    inbox = UpdateInbox(store, ManualClock(NOW), BOT, recorder.handlers())
    await store.engine.dispose()
    broken = SqlStore(_closed_engine(store))
    inbox.store = broken
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
        await inbox.accept([message(1)])
    await settle(inbox)
    assert recorder.handled == []


def _closed_engine(store: SqlStore) -> Any:
    from storage.db import create_engine

    url = store.engine.url.set(port=1) if store.engine.dialect.name == "postgresql" else None
    if url is None:
        return create_engine("sqlite+aiosqlite:////nonexistent-dir/inbox.db")
    return create_engine(url.render_as_string(hide_password=False), pool_pre_ping=False)


async def test_a_stop_waits_for_updates_in_hand_within_the_grace(store: SqlStore) -> None:
    release = asyncio.Event()

    async def react(update: Json) -> None:
        if update["update_id"] == 2:
            await asyncio.Event().wait()  # stuck for good
        await release.wait()

    recorder = Recorder(react)
    inbox = UpdateInbox(store, ManualClock(NOW), BOT, recorder.handlers())
    await inbox.accept([message(1), message(2)])
    asyncio.get_running_loop().call_later(0.05, release.set)
    assert not await inbox.drain(0.3)
    assert recorder.handled == [1]
    assert await update_states(store) == {1: ("handled", None), 2: ("pending", None)}
    for task in list(inbox._in_hand.values()):
        task.cancel()


async def test_an_update_without_an_update_id_is_dropped_not_the_batch(store: SqlStore) -> None:
    recorder = Recorder()
    inbox = UpdateInbox(store, ManualClock(NOW), BOT, recorder.handlers())
    assert await inbox.accept([{"message": {}}, {"update_id": "3"}, message(2)]) == 1
    await settle(inbox)
    assert recorder.handled == [2]
    assert await update_states(store) == {2: ("handled", None)}
