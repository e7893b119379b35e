"""Events stored first, applied after, over SQLite and PostgreSQL: a crash between the
two loses nothing, nothing is applied twice, and an event for a member who is not there
yet waits for them."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select, update

from bot.http.events import EventApplier
from funnels.kernel.records import IncomingEvent
from funnels.kernel.stages import Stage
from funnels.ladder.events import (
    WAIT_AT_MOST,
    ApplyEvents,
    CatchUpEvents,
    EventTally,
    StoreEvents,
)
from funnels.warmup.admissions import AdmitMember
from tests.integration.test_events_db import DAY1, fans, ledger, outcomes, task_cohort
from tests.support.funnel_kit import Kit, events_t, users_t
from tests.support.loopback import seconds_taken


async def states(kit: Kit) -> dict[str, str]:
    rows = await kit.rows(select(events_t.c.event_id, events_t.c.state))
    return {r.event_id: r.state for r in rows}


async def test_stored_events_are_pending_until_applied(kit: Kit) -> None:
    _, [m] = await task_cohort(kit, 1)

    [stored] = await StoreEvents(kit.deps)("platform", [fans(kit, m, 3)])

    assert (stored.accepted, stored.duplicates) == (3, 0)
    assert set((await states(kit)).values()) == {"pending"}
    assert await ledger(kit) == []  # nothing applied yet

    result = await ApplyEvents(kit.deps)()

    assert result.applied == 3 and len(result.completions) == 1
    assert set((await states(kit)).values()) == {"handled"}
    assert len(await ledger(kit)) == 1


async def test_a_crash_between_storing_and_applying_is_caught_up_once(kit: Kit) -> None:
    """The process died after the 202: the next tick (or start) applies what is pending,
    and running the catch-up again, or racing it, applies nothing twice."""
    _, [m] = await task_cohort(kit, 1)
    await StoreEvents(kit.deps)("platform", [fans(kit, m, 3)])

    first, second = await asyncio.gather(CatchUpEvents(kit.deps)(), CatchUpEvents(kit.deps)())
    again = await CatchUpEvents(kit.deps)()

    assert first.applied + second.applied == 3
    assert again.applied == 0
    assert len(await ledger(kit)) == 1
    assert (await kit.cohort(m_cohort(kit))).spent_minor == 50


def m_cohort(kit: Kit) -> int:
    return kit.cohorts[-1].id


async def test_requests_stored_together_share_out_their_repeats(kit: Kit) -> None:
    """Group commit: the first request that brings an id gets it; a repeat in the same
    request or a later one is a duplicate."""
    _, [m] = await task_cohort(kit, 1)
    a = kit.event("fan.locked", DAY1, m, event_id="same")
    b = kit.event("fan.locked", DAY1, m, event_id="other")

    got = await StoreEvents(kit.deps)("platform", [[a, a], [a, b], []])

    assert [(s.accepted, s.duplicates) for s in got] == [(1, 1), (1, 1), (0, 0)]
    # Another source's ids are its own.
    [theirs] = await StoreEvents(kit.deps)("links", [[a]])
    assert theirs.accepted == 1


async def test_an_event_for_an_unknown_member_waits_and_counts_when_they_arrive(
    kit: Kit,
) -> None:
    cohort, _ = await task_cohort(kit, 1)
    newcomer_tg = 777_001
    early = [
        IncomingEvent(f"early-{i}", "fan.locked", DAY1 + timedelta(minutes=i), None, newcomer_tg)
        for i in range(3)
    ]

    result = await kit.ingest()("platform", early)

    assert (result.accepted, result.unmatched) == (3, 3)
    assert set((await states(kit)).values()) == {"waiting"}
    # Nothing to wake while the member is unknown.
    assert (await CatchUpEvents(kit.deps)()).woke == 0

    # The member arrives: joins the warm-up group, replies, is admitted.
    async with kit.store.transaction() as tx:
        [ref] = await tx.users.add_users([(newcomer_tg, "Late", "en")], kit.clock.now())
        await tx.commit()
    joined = await kit.join()(cohort.warmup_chat_id or 0, kit.actor(ref))
    assert joined.outcome == "joined"
    # In the warm-up but not in the task group yet: still waiting.
    assert (await CatchUpEvents(kit.deps)()).woke == 0
    await kit.force_stage(cohort.id, ref.user_id, Stage.REPLIED)
    assert await AdmitMember(kit.deps)(cohort.id, ref.user_id) == "admitted"

    caught = await CatchUpEvents(kit.deps)()

    assert caught.woke == 3
    assert set((await states(kit)).values()) == {"handled"}
    assert {o for o, _, _ in (await outcomes(kit)).values()} == {"counted"}
    assert [row[0] for row in await ledger(kit)] == [ref.user_id]
    assert (await CatchUpEvents(kit.deps)()).woke == 0


async def test_an_event_by_ref_waits_for_a_member_not_in_a_task_group(kit: Kit) -> None:
    cohort, _ = await task_cohort(kit, 1)
    [warm] = await kit.members(1)
    async with kit.store.transaction() as tx:
        ref = await tx.users.ref_code(warm.user_id)
    event = IncomingEvent("by-ref", "fan.locked", DAY1, member_ref=ref)

    await kit.ingest()("platform", [event])
    assert (await outcomes(kit))["by-ref"][0] == "no_task_stage"
    assert (await states(kit))["by-ref"] == "waiting"

    await kit.force_stage(cohort.id, warm.user_id, Stage.REPLIED)
    await AdmitMember(kit.deps)(cohort.id, warm.user_id)
    assert (await CatchUpEvents(kit.deps)()).woke == 1
    assert (await outcomes(kit))["by-ref"] == ("counted", warm.user_id, cohort.id)


async def test_events_that_wait_too_long_are_given_up(kit: Kit) -> None:
    await task_cohort(kit, 1)
    await kit.ingest()("platform", [IncomingEvent("lost", "fan.locked", DAY1, "NOSUCH")])
    kit.clock.set(kit.clock.now() + WAIT_AT_MOST - timedelta(minutes=1))
    assert (await CatchUpEvents(kit.deps)()).expired == 0

    kit.clock.set(kit.clock.now() + timedelta(minutes=2))
    assert (await CatchUpEvents(kit.deps)()).expired == 1

    assert (await outcomes(kit))["lost"][0] == "expired"
    assert (await EventTally(kit.deps)())[("handled", "expired")] == 1


async def test_apply_by_ids_skips_what_another_run_applied(kit: Kit) -> None:
    _, [m] = await task_cohort(kit, 1)
    [stored] = await StoreEvents(kit.deps)("platform", [fans(kit, m, 3)])
    assert (await ApplyEvents(kit.deps)()).applied == 3

    assert (await ApplyEvents(kit.deps)(stored.rows)).applied == 0
    assert len(await ledger(kit)) == 1


async def test_a_user_renamed_to_the_waiting_telegram_id_is_found(kit: Kit) -> None:
    """The match is by the member the event names, whoever that turns out to be."""
    cohort, [m] = await task_cohort(kit, 1)
    assert m.telegram_id is not None
    await kit.ingest()("platform", [IncomingEvent("x", "fan.locked", DAY1, None, 42_4242)])
    async with kit.store.transaction() as tx:
        await tx.conn.execute(
            update(users_t).where(users_t.c.id == m.user_id).values(telegram_id=42_4242)
        )
        await tx.commit()
    assert (await CatchUpEvents(kit.deps)()).woke == 1
    assert (await outcomes(kit))["x"] == ("counted", m.user_id, cohort.id)


async def test_the_ticks_catch_up_leaves_fresh_events_to_the_applier(kit: Kit) -> None:
    """Beside the service's event applier, the tick applies only events pending for a
    while (left by a stop, a crash or a failure), never the ones just stored."""
    _, [m] = await task_cohort(kit, 1)
    tick = CatchUpEvents(kit.deps, stale_after=timedelta(seconds=30))
    await StoreEvents(kit.deps)("platform", [fans(kit, m, 2)])

    assert (await tick()).applied == 0
    assert set((await states(kit)).values()) == {"pending"}

    kit.clock.set(kit.clock.now() + timedelta(seconds=31))
    assert (await tick()).applied == 2


async def test_the_ticks_catch_up_takes_the_stale_events_before_a_fresh_burst(kit: Kit) -> None:
    """It looks at the first pending event before claiming: a stale one is applied
    however many fresh ones came after it, and the fresh ones are left to the applier."""
    _, [m, n] = await task_cohort(kit, 2)
    tick = CatchUpEvents(kit.deps, stale_after=timedelta(seconds=30))
    await StoreEvents(kit.deps)("platform", [fans(kit, m, 1)])
    kit.clock.set(kit.clock.now() + timedelta(seconds=31))
    await StoreEvents(kit.deps)("platform", [fans(kit, n, 2)])

    assert (await tick()).applied == 1
    left = await states(kit)
    assert sorted(left.values()) == ["handled", "pending", "pending"]
    async with kit.store.transaction() as tx:
        assert await tx.events.oldest_pending() == kit.clock.now()  # the fresh burst's


async def test_the_oldest_pending_event_is_none_once_all_are_applied(kit: Kit) -> None:
    _, [m] = await task_cohort(kit, 1)
    async with kit.store.transaction() as tx:
        assert await tx.events.oldest_pending() is None
    stored_at = kit.clock.now()
    await StoreEvents(kit.deps)("platform", [fans(kit, m, 2)])
    kit.clock.set(stored_at + timedelta(minutes=5))
    async with kit.store.transaction() as tx:
        assert await tx.events.oldest_pending() == stored_at

    await ApplyEvents(kit.deps)()

    async with kit.store.transaction() as tx:
        assert await tx.events.oldest_pending() is None


async def test_settled_waits_while_any_stored_event_is_pending(kit: Kit) -> None:
    """What another process stored and has not applied yet keeps payouts waiting (for at
    most what they were given): the queue is the processes' shared view of a burst."""
    _, [m] = await task_cohort(kit, 1)
    applier = EventApplier(kit.deps)  # not started: stands for another process's
    assert await seconds_taken(applier.settled(2.0)) < 0.1  # nothing stored

    await StoreEvents(kit.deps)("platform", [fans(kit, m, 2)])
    assert await seconds_taken(applier.settled(0.3)) >= 0.3  # pending the whole time

    await ApplyEvents(kit.deps)()
    assert await seconds_taken(applier.settled(2.0)) < 0.1
