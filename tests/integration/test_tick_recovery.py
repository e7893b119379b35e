"""The tick after a crash, over real SQLite and PostgreSQL: one claim per step (so a kill
leaves at most one step in doubt), talks held behind a part in doubt, being told to
stop, several tickers at once, and envelopes left full and open."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import update

from bot.service import _Ticker
from bot.telegram.offline import RecordingMessenger
from funnels.cohorts.tick import RunDueSteps
from funnels.kernel.messaging import (
    DeliveryError,
    EnvelopeOffer,
    EnvelopeSummary,
    Outgoing,
    ScriptPost,
)
from tests.support.funnel_kit import (
    WARMUP_CHAT,
    Kit,
    cohorts_t,
    envelopes_t,
    ledger_t,
    steps_t,
    warmup_at,
)

WELCOME = ScriptPost("Welcome to the group.", None, "en")
PART_ONE = ScriptPost("Corner shops\n— Ana\n\nPart one of the talk.", None, "en")
PART_TWO = ScriptPost("Part two of the talk.", None, "en")


@dataclass
class CrashingMessenger(RecordingMessenger):
    """Dies like a killed process (the task is cancelled) on the ``crash_on``-th send;
    with ``pause``, every send yields to the loop first, as a network call would
    (``slow_first``: the first send takes that long instead)."""

    crash_on: int = 0
    pause: float = 0.0
    slow_first: float = 0.0
    attempts: int = 0

    async def send(self, chat_id: int, message: Outgoing, *, pin: bool = False) -> int:
        self.attempts += 1
        pause = self.slow_first if self.attempts == 1 and self.slow_first else self.pause
        if pause:
            await asyncio.sleep(pause)
        if self.attempts == self.crash_on:
            raise asyncio.CancelledError
        return await super().send(chat_id, message, pin=pin)


def crashing(
    kit: Kit, crash_on: int = 0, pause: float = 0.0, slow_first: float = 0.0
) -> CrashingMessenger:
    messenger = CrashingMessenger(crash_on=crash_on, pause=pause, slow_first=slow_first)
    kit.messenger = kit.deps.messenger = messenger
    return messenger


async def cohorts(kit: Kit, n: int) -> list[int]:
    return [(await kit.start(chat=WARMUP_CHAT - i, code=f"K{i}")).id for i in range(n)]


# ---------------------------------------------------------------- one claim per step


async def test_claiming_one_claims_exactly_one_of_many_due(kit: Kit) -> None:
    ids = await cohorts(kit, 3)
    now = warmup_at(1, "09:00")
    async with kit.store.transaction() as tx:
        claimed = await tx.steps.claim_due(now, "p", now + timedelta(minutes=5), 1)
        await tx.commit()

    assert [(r.cohort_id, r.key) for r in claimed] == [(ids[0], "d1_welcome")]
    running = await kit.count(steps_t, steps_t.c.status == "running")
    assert running == 1


async def test_a_crash_mid_tick_leaves_only_the_step_in_flight_unknown(kit: Kit) -> None:
    ids = await cohorts(kit, 4)
    messenger = crashing(kit, crash_on=2)
    kit.clock.set(warmup_at(1, "09:00"))

    with pytest.raises(asyncio.CancelledError):
        await RunDueSteps(kit.deps)()

    welcome = [(await kit.step(i, "d1_welcome")).status for i in ids]
    assert welcome == ["done", "running", "pending", "pending"]
    assert [s.message for s in messenger.sent] == [WELCOME]

    # The process is gone; another one ticks while the lease still holds, then after.
    report = await kit.tick(warmup_at(1, "09:03"))
    assert (report.claimed, report.unknown) == (2, 0)
    report = await kit.tick(warmup_at(1, "09:06"))
    assert (report.claimed, report.unknown) == (0, 1)

    welcome = [(await kit.step(i, "d1_welcome")).status for i in ids]
    assert welcome == ["done", "unknown", "done", "done"]
    assert sorted(s.chat_id for s in messenger.sent) == sorted(WARMUP_CHAT - i for i in (0, 2, 3))
    assert await kit.count(steps_t, steps_t.c.status == "unknown") == 1


async def test_a_crash_in_a_talk_holds_its_later_parts(kit: Kit) -> None:
    cohort = await kit.start()
    await kit.tick(warmup_at(1, "09:00"))
    messenger = crashing(kit, crash_on=1)
    kit.clock.set(warmup_at(1, "10:05"))  # both parts due

    with pytest.raises(asyncio.CancelledError):
        await RunDueSteps(kit.deps)()

    assert (await kit.step(cohort.id, "d1_talk")).status == "running"
    assert (await kit.step(cohort.id, "d1_talk.p1")).status == "pending"
    # While the first part may still be going out, the second is not claimable.
    report = await kit.tick(warmup_at(1, "10:06"))
    assert report.claimed == 0

    report = await kit.tick(warmup_at(1, "10:11"))

    assert (report.claimed, report.unknown) == (0, 1)
    assert messenger.sent == []
    assert (await kit.step(cohort.id, "d1_talk")).status == "unknown"
    held = await kit.step(cohort.id, "d1_talk.p1")
    assert (held.status, held.error) == ("held", "waiting for a decision on d1_talk")
    assert held.due_at == warmup_at(1, "10:02")  # untouched until someone decides


@pytest.mark.parametrize("definite", [False, True])
async def test_a_talk_part_in_doubt_or_failed_holds_the_rest(kit: Kit, definite: bool) -> None:
    cohort = await kit.start()
    await kit.tick(warmup_at(1, "09:00"))
    kit.messenger.sent.clear()
    kit.messenger.fail_next.append(DeliveryError("no answer", definite=definite))

    report = await kit.tick(warmup_at(1, "10:00"))

    assert (report.failed, report.unknown) == ((1, 0) if definite else (0, 1))
    first = await kit.step(cohort.id, "d1_talk")
    assert first.status == ("failed" if definite else "unknown")
    held = await kit.step(cohort.id, "d1_talk.p1")
    assert (held.status, held.error) == ("held", "waiting for a decision on d1_talk")
    assert (await kit.tick(warmup_at(1, "10:02"))).claimed == 0
    assert (await kit.tick(warmup_at(1, "11:00"))).claimed == 0
    async with kit.store.transaction() as tx:  # nothing held counts as due
        assert await tx.steps.next_due_at() == warmup_at(1, "12:00")
    assert (await kit.tick(warmup_at(1, "12:00"))).done == 1  # other steps go on
    assert [type(s.message) for s in kit.messenger.sent] == [EnvelopeOffer]
    assert (await kit.step(cohort.id, "d1_talk.p1")).status == "held"
    async with kit.store.transaction() as tx:
        attention = [(r.key, r.status) for r in await tx.steps.attention(cohort.id)]
    assert attention == [("d1_talk", first.status), ("d1_talk.p1", "held")]


async def test_a_held_part_does_not_keep_the_cohort_from_finishing(kit: Kit) -> None:
    cohort = await kit.start()
    await kit.tick(warmup_at(1, "09:00"))
    kit.messenger.fail_next.append(DeliveryError("no answer", definite=False))
    await kit.tick(warmup_at(1, "10:00"))

    await kit.run_until(warmup_at(6, "00:01"))  # past the cohort's end

    assert (await kit.cohort(cohort.id)).status == "finished"
    assert (await kit.step(cohort.id, "d1_talk.p1")).status == "held"


# ---------------------------------------------------------------- stopping


async def test_a_stopped_tick_finishes_its_step_and_claims_no_more(kit: Kit) -> None:
    ids = await cohorts(kit, 3)
    kit.clock.set(warmup_at(1, "09:00"))
    tick = RunDueSteps(kit.deps)

    class StopAfterFirstSend(RecordingMessenger):
        async def send(self, chat_id: int, message: Outgoing, *, pin: bool = False) -> int:
            tick.stop()  # shutdown asked for while this send is in flight
            return await super().send(chat_id, message, pin=pin)

    kit.deps.messenger = kit.messenger = StopAfterFirstSend()

    report = await tick()

    assert (report.claimed, report.done, report.stopped) == (1, 1, True)
    assert [(await kit.step(i, "d1_welcome")).status for i in ids] == [
        "done",
        "pending",
        "pending",
    ]
    assert (await tick()).claimed == 0  # stays stopped
    assert (await kit.tick()).done == 2  # another process carries on


async def test_a_stop_event_shared_with_the_service_is_honoured(kit: Kit) -> None:
    await cohorts(kit, 2)
    kit.clock.set(warmup_at(1, "09:00"))
    stopping = asyncio.Event()
    stopping.set()

    report = await RunDueSteps(kit.deps, stopping=stopping)()

    assert (report.claimed, report.stopped) == (0, True)
    assert await kit.count(steps_t, steps_t.c.status == "running") == 0


# ---------------------------------------------------------------- what is next


async def test_a_tick_says_when_the_next_step_is_due_and_a_full_batch_leaves_it_unsaid(
    kit: Kit,
) -> None:
    ids = await cohorts(kit, 3)
    kit.clock.set(warmup_at(1, "09:00"))

    report = await RunDueSteps(kit.deps)()  # the three welcomes

    assert report.done == 3
    assert report.next_due == warmup_at(1, "10:00")  # the talks
    # A paused cohort's steps are not next: nothing is claimed for it.
    async with kit.store.transaction() as tx:
        await tx.conn.execute(
            update(cohorts_t).where(cohorts_t.c.id == ids[0]).values(status="paused")
        )
        await tx.commit()
    kit.clock.set(warmup_at(1, "10:00"))
    # Two of the two talks due: the batch is full, more may be due, the caller claims on.
    full = await RunDueSteps(kit.deps, batch=2)()
    assert (full.claimed, full.next_due) == (2, None)
    after = await RunDueSteps(kit.deps, batch=2)()
    assert (after.claimed, after.next_due) == (0, warmup_at(1, "10:02"))  # the talks' part two


# ---------------------------------------------------------------- several tickers


async def test_two_tickers_claiming_one_at_a_time_run_each_step_once_and_talks_in_order(
    kit: Kit,
) -> None:
    ids = await cohorts(kit, 3)
    messenger = crashing(kit, pause=0.005)  # sends take a moment: the tickers interleave
    kit.clock.set(warmup_at(1, "09:00"))
    await asyncio.gather(*(RunDueSteps(kit.deps, owner=f"process-{n}")() for n in range(2)))
    kit.clock.set(warmup_at(1, "10:02"))  # both parts of every talk

    reports = await asyncio.gather(
        *(RunDueSteps(kit.deps, owner=f"process-{n}")() for n in range(2))
    )
    assert all(r.claimed for r in reports)  # both took part
    # A part whose earlier part was in flight waited; a later tick sends it.
    reports.append(await kit.tick())

    assert sum(r.done for r in reports) == 3 * 2
    for i, cohort_id in enumerate(ids):
        in_chat = [s.message for s in messenger.in_chat(WARMUP_CHAT - i)]
        assert in_chat == [WELCOME, PART_ONE, PART_TWO]
        for key in ("d1_welcome", "d1_talk", "d1_talk.p1"):
            run = await kit.step(cohort_id, key)
            assert (run.status, run.attempts) == ("done", 1)


async def test_a_talk_part_waits_while_another_process_sends_the_part_before(kit: Kit) -> None:
    cohort = await kit.start()
    await kit.tick(warmup_at(1, "09:00"))
    messenger = crashing(kit, slow_first=0.05)  # the first part is slow to go out
    kit.clock.set(warmup_at(1, "10:05"))

    reports = await asyncio.gather(
        *(RunDueSteps(kit.deps, owner=f"process-{n}")() for n in range(2))
    )

    assert sum(r.done for r in reports) == 2
    assert [s.message for s in messenger.sent] == [PART_ONE, PART_TWO]
    assert messenger.unpinned == [(WARMUP_CHAT, messenger.sent[0].message_id)]
    for key in ("d1_talk", "d1_talk.p1"):
        run = await kit.step(cohort.id, key)
        assert (run.status, run.attempts) == ("done", 1)


# ---------------------------------------------------------------- envelopes left open


async def test_a_full_envelope_whose_close_never_ran_is_closed_by_the_next_tick(
    kit: Kit,
) -> None:
    cohort = await kit.start()
    refs = await kit.members(3)
    await kit.run_until(warmup_at(1, "11:00"))
    await kit.tick(warmup_at(1, "12:00"))
    envelope_id = await kit.envelope_id(cohort.id)
    for ref in refs:  # the last tap is stored, then the process dies before closing
        await kit.tap(envelope_id, ref.user_id, close=False)
    [env] = await kit.rows(envelopes_t.select())
    assert (env.claimed, env.closed_at) == (3, None)
    spent = (await kit.cohort(cohort.id)).spent_minor
    ledger = await kit.rows(ledger_t.select().order_by(ledger_t.c.id))

    reports = await asyncio.gather(
        *(RunDueSteps(kit.deps, owner=f"process-{n}")() for n in range(2))
    )

    assert [e for r in reports for e in r.closed_envelopes] == [envelope_id]
    [(chat, message_id, summary)] = kit.messenger.edits
    offer = kit.messenger.sent_of(EnvelopeOffer)[0]
    assert (chat, message_id) == (WARMUP_CHAT, offer.message_id)
    assert isinstance(summary, EnvelopeSummary)
    assert (summary.claimed, summary.shares, summary.claimed_minor) == (3, 3, 100)
    [env] = await kit.rows(envelopes_t.select())
    assert env.closed_at == warmup_at(1, "12:00")
    assert (await kit.cohort(cohort.id)).spent_minor == spent == 100
    assert await kit.rows(ledger_t.select().order_by(ledger_t.c.id)) == ledger

    await kit.tick(warmup_at(1, "12:01"))
    await kit.run_until(warmup_at(1, "12:30"))  # its scheduled close finds it closed
    assert len(kit.messenger.edits) == 1
    close = await kit.step(cohort.id, "d1_envelope.close")
    assert close.outcome is not None and close.outcome["closed_here"] is False


async def test_an_envelope_with_shares_left_is_not_closed_early(kit: Kit) -> None:
    cohort = await kit.start()
    refs = await kit.members(2)
    await kit.run_until(warmup_at(1, "12:00"))
    envelope_id = await kit.envelope_id(cohort.id)
    for ref in refs:
        await kit.tap(envelope_id, ref.user_id, close=False)

    report = await kit.tick(warmup_at(1, "12:05"))

    assert report.closed_envelopes == []
    assert kit.messenger.edits == []
    [env] = await kit.rows(envelopes_t.select())
    assert (env.claimed, env.closed_at) == (2, None)


async def test_a_full_batch_claims_on_in_the_same_tick(kit: Kit) -> None:
    """More due than one batch (a busy minute, a catch-up after a stop): the service's
    tick claims on at once instead of leaving the rest for a tick later."""
    for n in range(3):
        await kit.start(chat=WARMUP_CHAT - n, code=f"B{n}")
    kit.clock.set(warmup_at(1, "09:00"))  # three welcomes due
    ticker = _Ticker(kit.deps, None)
    ticker.steps.batch = 2
    await ticker.run()
    assert [m.chat_id for m in kit.messenger.sent] == [WARMUP_CHAT - n for n in range(3)]
    async with kit.store.engine.connect() as conn:
        statuses = (await conn.execute(steps_t.select().where(steps_t.c.key == "d1_welcome"))).all()
    assert {r.status for r in statuses} == {"done"}


async def test_a_catch_up_runs_the_chores_once_after_its_last_batch(kit: Kit) -> None:
    # Long after the week. Cohort A's steps are all done, so it is ready to be finished
    # (one of the chores); cohort B's steps are all due. The chores wait for the call
    # that finds no full batch left.
    a, b = await cohorts(kit, 2)
    async with kit.store.transaction() as tx:
        await tx.conn.execute(update(steps_t).where(steps_t.c.cohort_id == a).values(status="done"))
        await tx.commit()
    kit.clock.set(warmup_at(1, "08:00") + timedelta(days=60))
    tick = RunDueSteps(kit.deps, batch=2)

    reports = [await tick()]
    while reports[-1].claimed == tick.batch:
        reports.append(await tick())

    assert len(reports) > 1
    assert [r.finished_cohorts for r in reports] == [[]] * (len(reports) - 1) + [[a]]
    assert sum(r.claimed for r in reports) == await kit.count(steps_t, steps_t.c.cohort_id == b)
