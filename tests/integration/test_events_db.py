"""IngestEvents (store, then apply) over SQLite and PostgreSQL: dedupe, unlocks, goals,
rewards, budget, promotion."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from funnels.deps import Deps
from funnels.kernel.messaging import RewardNotice
from funnels.kernel.records import CohortRecord, IncomingEvent, MemberRef
from funnels.kernel.stages import Role, Stage
from funnels.ladder.events import ApplyEvents, IngestEvents, StoreEvents
from funnels.ops.rollups import ReconcileRollups
from storage.tables import payouts as payouts_t
from tests.support.funnel_kit import (
    TASK_CHAT,
    Kit,
    Rendezvous,
    events_t,
    ledger_t,
    members_t,
    progress_t,
    task_at,
    uniques_t,
    users_t,
)

DAY1 = task_at(1, "10:00")
DAY2 = task_at(2, "10:00")


async def task_cohort(kit: Kit, admitted: int) -> tuple[CohortRecord, list[MemberRef]]:
    cohort = await kit.start()
    async with kit.store.transaction() as tx:
        await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT)
        await tx.commit()
    refs = await kit.admitted(cohort, admitted)
    kit.clock.set(task_at(1, "12:00"))
    return cohort, refs


async def outcomes(kit: Kit) -> dict[str, tuple[str | None, int | None, int | None]]:
    rows = await kit.rows(
        select(events_t.c.event_id, events_t.c.outcome, events_t.c.user_id, events_t.c.cohort_id)
    )
    return {r.event_id: (r.outcome, r.user_id, r.cohort_id) for r in rows}


async def progress(kit: Kit, user_id: int, task_id: str) -> tuple[dict[str, int], object, object]:
    [row] = await kit.rows(
        select(progress_t.c.progress, progress_t.c.completed_at, progress_t.c.reward_status).where(
            progress_t.c.user_id == user_id, progress_t.c.task_id == task_id
        )
    )
    return dict(row.progress), row.completed_at, row.reward_status


async def ledger(kit: Kit) -> list[tuple[int, str, int, str]]:
    rows = await kit.rows(
        select(
            ledger_t.c.user_id, ledger_t.c.ref, ledger_t.c.amount_minor, ledger_t.c.idempotency_key
        )
        .where(ledger_t.c.kind == "reward")
        .order_by(ledger_t.c.id)
    )
    return [tuple(r) for r in rows]


def fans(kit: Kit, member: MemberRef, n: int, at: datetime = DAY1) -> list[IncomingEvent]:
    return [kit.event("fan.locked", at + timedelta(minutes=i), member) for i in range(n)]


async def test_duplicate_event_ids_are_acknowledged_and_counted_once(kit: Kit) -> None:
    cohort, [m] = await task_cohort(kit, 1)
    e1, e2, e3 = fans(kit, m, 3)
    ingest = kit.ingest()

    first = await ingest("platform", [e1, e1, e2])

    assert (first.accepted, first.duplicates, first.unmatched) == (2, 1, 0)
    assert first.completions == []
    assert (await progress(kit, m.user_id, "invite_fans"))[0] == {"0": 2}

    second = await ingest("platform", [e2, e3, e1])

    assert (second.accepted, second.duplicates) == (1, 2)
    assert [(c.task_id, c.reward_status) for c in second.completions] == [("invite_fans", "paid")]
    assert await kit.count(events_t) == 3
    assert (await progress(kit, m.user_id, "invite_fans"))[0] == {"0": 3}
    assert len(await ledger(kit)) == 1

    third = await ingest("platform", [e1, e2, e3])
    assert (third.accepted, third.duplicates, third.completions) == (0, 3, [])
    # The same id from another source is another event.
    other = await ingest(
        "crm", [IncomingEvent(e1.event_id, "fan.locked", DAY1, telegram_user_id=m.telegram_id)]
    )
    assert (other.accepted, other.duplicates) == (1, 0)
    assert await kit.count(events_t) == 4
    assert len(await ledger(kit)) == 1
    assert (await kit.cohort(cohort.id)).spent_minor == 50


async def test_progress_rows_are_the_triples_asked_for_whatever_the_batch(kit: Kit) -> None:
    cohort, refs = await task_cohort(kit, 3)
    a, b, c = (m.user_id for m in refs)
    at = kit.clock.now()
    async with kit.store.transaction() as tx:
        first = await tx.tasks.progress_many([(cohort.id, a, "t1"), (cohort.id, b, "t2")], at)
        # (a's t2 and b's t1 are in the users and tasks asked for, but not asked for.)
        second = await tx.tasks.progress_many(
            [(cohort.id, a, "t1"), (cohort.id, b, "t2"), (cohort.id, c, "t1")], at
        )
        statements = (
            [
                r[0]
                for r in await tx.conn.exec_driver_sql(
                    "SELECT statement FROM pg_prepared_statements"
                    " WHERE statement LIKE 'SELECT task_progress.id%'"
                )
            ]
            if kit.dialect == "postgresql"
            else []
        )
        await tx.commit()

    assert set(first) == {(cohort.id, a, "t1"), (cohort.id, b, "t2")}
    assert set(second) == set(first) | {(cohort.id, c, "t1")}
    assert {k: r.id for k, r in second.items() if k in first} == {k: r.id for k, r in first.items()}
    assert [dict(r.progress) for r in second.values()] == [{}, {}, {}]  # created empty
    rows = await kit.rows(
        select(progress_t.c.user_id, progress_t.c.task_id).where(
            progress_t.c.cohort_id == cohort.id
        )
    )
    assert sorted((r.user_id, r.task_id) for r in rows) == sorted([(a, "t1"), (b, "t2"), (c, "t1")])
    if kit.dialect == "postgresql":  # one statement for batches of 2 and of 3
        assert len(statements) == 1


async def test_events_before_a_task_unlocks_do_not_count(kit: Kit) -> None:
    _, [m] = await task_cohort(kit, 1)
    early = kit.event("fan.locked", task_at(1, "08:59"), m, event_id="early")
    on_time = kit.event("fan.locked", task_at(1, "09:00"), m, event_id="on-time")
    sale_day1 = kit.event("order.paid", task_at(1, "15:00"), m, event_id="sale-day1")

    result = await kit.ingest()("platform", [early, on_time, sale_day1])

    assert result.accepted == 3
    got = await outcomes(kit)
    assert got["early"][0] == "no_task"
    assert got["on-time"][0] == "counted"
    assert got["sale-day1"][0] == "no_task"  # first_sale unlocks on task day 2
    assert (await progress(kit, m.user_id, "invite_fans"))[0] == {"0": 1}
    assert await kit.count(progress_t, progress_t.c.task_id == "first_sale") == 0


async def test_a_count_goal_completes_at_the_nth_event_and_pays_once(kit: Kit) -> None:
    cohort, [m, other] = await task_cohort(kit, 2)
    ingest = kit.ingest()
    events = fans(kit, m, 5)

    r1 = await ingest("platform", events[:2])
    assert r1.completions == []
    assert await kit.stage(cohort.id, m.user_id) == Stage.ADMITTED
    assert kit.messenger.notices == []

    r2 = await ingest("platform", events[2:3])

    [done] = r2.completions
    assert (done.task_id, done.reward_minor, done.reward_status, done.promoted_to) == (
        "invite_fans",
        50,
        "paid",
        None,
    )
    assert done.member.user_id == m.user_id
    values, completed_at, status = await progress(kit, m.user_id, "invite_fans")
    assert (values, completed_at, status) == ({"0": 3}, events[2].occurred_at, "paid")
    assert await ledger(kit) == [
        (m.user_id, "invite_fans", 50, f"reward:{cohort.id}:{m.user_id}:invite_fans")
    ]
    assert kit.messenger.notices == [
        (m, RewardNotice("invite_fans", "Invite three fans", 50, "USD", None, "en"))
    ]
    [row] = await kit.rows(
        members_t.select().where(
            members_t.c.cohort_id == cohort.id, members_t.c.user_id == m.user_id
        )
    )
    assert (row.stage, row.tasked_at) == (Stage.TASKED, events[2].occurred_at)
    assert (await kit.cohort(cohort.id)).spent_minor == 50

    r3 = await ingest("platform", events[3:])

    assert r3.completions == []
    assert (await outcomes(kit))[events[3].event_id][0] == "no_progress"
    assert (await progress(kit, m.user_id, "invite_fans"))[0] == {"0": 3}
    assert len(await ledger(kit)) == 1
    assert len(kit.messenger.notices) == 1
    assert await kit.stage(cohort.id, other.user_id) == Stage.ADMITTED
    async with kit.store.transaction() as tx:
        assert await tx.ledger.balance(m.user_id) == {"USD": 50}


async def test_a_unique_goal_ignores_repeated_values_across_batches(kit: Kit) -> None:
    _, [m] = await task_cohort(kit, 1)
    ingest = kit.ingest()

    def click(visitor: str | None) -> IncomingEvent:
        data = {"visitor": visitor} if visitor is not None else {}
        return kit.event("link.clicked", DAY1, m, **data)

    r1 = await ingest("platform", [click("v-a"), click("v-a"), click(None)])
    assert r1.accepted == 3 and r1.completions == []
    r2 = await ingest("platform", [click("v-a")])
    assert r2.completions == []
    assert (await progress(kit, m.user_id, "visitors"))[0] == {"0": 1}

    r3 = await ingest("platform", [click("v-b")])

    [done] = r3.completions
    assert (done.task_id, done.reward_minor, done.reward_status) == ("visitors", 0, "none")
    values, completed_at, status = await progress(kit, m.user_id, "visitors")
    assert (values, completed_at, status) == ({"0": 2}, DAY1, None)
    values_seen = await kit.rows(select(uniques_t.c.value).order_by(uniques_t.c.value))
    assert [r.value for r in values_seen] == ["v-a", "v-b"]
    assert await ledger(kit) == []
    assert kit.messenger.notices == []  # nothing paid, nothing promoted: no message


async def test_order_paid_makes_a_shopkeeper(kit: Kit) -> None:
    cohort, [m] = await task_cohort(kit, 1)
    kit.clock.set(DAY2)

    result = await kit.ingest()("platform", [kit.event("order.paid", DAY2, m, amount=1999)])

    [done] = result.completions
    assert (done.task_id, done.reward_status, done.promoted_to) == (
        "first_sale",
        "paid",
        "shopkeeper",
    )
    [row] = await kit.rows(
        members_t.select().where(
            members_t.c.cohort_id == cohort.id, members_t.c.user_id == m.user_id
        )
    )
    assert row.stage == Stage.SHOPKEEPER
    assert (row.tasked_at, row.sold_at, row.shopkeeper_at) == (DAY2, DAY2, DAY2)
    [user] = await kit.rows(select(users_t.c.role).where(users_t.c.id == m.user_id))
    assert user.role == Role.SHOPKEEPER
    assert kit.messenger.notices == [
        (m, RewardNotice("first_sale", "First sale", 20, "USD", "shopkeeper", "en"))
    ]
    assert await ledger(kit) == [
        (m.user_id, "first_sale", 20, f"reward:{cohort.id}:{m.user_id}:first_sale")
    ]

    again = await kit.ingest()("platform", [kit.event("order.paid", DAY2 + timedelta(hours=1), m)])
    assert again.completions == []
    assert await kit.stage(cohort.id, m.user_id) == Stage.SHOPKEEPER
    assert len(await ledger(kit)) == 1


async def test_a_sale_before_the_sale_task_unlocks_still_marks_sold(kit: Kit) -> None:
    cohort, [m] = await task_cohort(kit, 1)

    await kit.ingest()("platform", [kit.event("order.paid", DAY1, m, event_id="early-sale")])

    assert await kit.stage(cohort.id, m.user_id) == Stage.SOLD
    assert (await outcomes(kit))["early-sale"][0] == "no_task"
    [user] = await kit.rows(select(users_t.c.role).where(users_t.c.id == m.user_id))
    assert user.role == Role.MEMBER  # not promoted: the task did not complete


async def test_rewards_past_the_budget_are_owed(kit: Kit) -> None:
    # Budget 1.70, nothing spent on envelopes (no tick ran): three 0.50 rewards fit, the
    # fourth does not and is owed; later rewards queue behind it.
    cohort, refs = await task_cohort(kit, 5)
    ingest = kit.ingest()
    statuses = []
    for m in refs[:4]:
        [done] = (await ingest("platform", fans(kit, m, 3))).completions
        statuses.append(done.reward_status)

    assert statuses == ["paid", "paid", "paid", "over_budget"]
    assert (await kit.cohort(cohort.id)).spent_minor == 150
    assert await progress(kit, refs[3].user_id, "invite_fans") == (
        {"0": 3},
        DAY1 + timedelta(minutes=2),
        "over_budget",
    )
    assert [r[0] for r in await ledger(kit)] == [m.user_id for m in refs[:3]]
    assert [n[0].user_id for n in kit.messenger.notices] == [m.user_id for m in refs[:3]]
    assert await kit.stage(cohort.id, refs[3].user_id) == Stage.TASKED  # the task still counts

    kit.clock.set(DAY2)
    [sale_a] = (await ingest("platform", [kit.event("order.paid", DAY2, refs[0])])).completions
    [sale_b] = (await ingest("platform", [kit.event("order.paid", DAY2, refs[1])])).completions

    # Owed rewards keep their order: while refs[3]'s reward waits, a later one that would
    # fit (0.20 of the 0.20 left) queues behind it instead of jumping ahead.
    assert (sale_a.reward_status, sale_b.reward_status) == ("over_budget", "over_budget")
    assert (await kit.cohort(cohort.id)).spent_minor == 150
    assert len(await ledger(kit)) == 3
    # Promotion does not depend on money: the member is told, with nothing paid.
    assert kit.messenger.notices[-1] == (
        refs[1],
        RewardNotice("first_sale", "First sale", 0, "USD", "shopkeeper", "en"),
    )
    assert await kit.stage(cohort.id, refs[1].user_id) == Stage.SHOPKEEPER


@pytest.mark.postgres
async def test_rewards_written_while_another_process_spent_are_decided_again(kit: Kit) -> None:
    """Rewards are written before the budgets are held (so that appliers in other
    processes wait only for the spend and the commit). Two appliers each decide two 0.50
    rewards on the 1.70 both read; the first to hold the budget pays them; the second
    finds 0.70 left once it holds it, undoes what it wrote and decides again: one paid,
    one owed. The budget is never overspent."""
    cohort, refs = await task_cohort(kit, 4)
    ingest = kit.ingest()
    for m in refs:
        await ingest("platform", fans(kit, m, 2))
    # Both stop after writing their rewards, before holding the budget, until both are
    # there (or a second has passed).
    store = Rendezvous(kit.store, "tasks", "rewarded_many", 2)
    racing = IngestEvents(Deps(store, kit.messenger, kit.clock))  # type: ignore[arg-type]
    third = [kit.event("fan.locked", DAY1 + timedelta(minutes=5), m) for m in refs]

    results = await asyncio.gather(racing("platform", third[:2]), racing("platform", third[2:]))

    assert store.arrived == 2  # both wrote before either held the budget
    statuses = sorted(c.reward_status for r in results for c in r.completions)
    assert statuses == ["over_budget", "paid", "paid", "paid"]
    assert (await kit.cohort(cohort.id)).spent_minor == 150
    paid_to = {r[0] for r in await ledger(kit)}
    assert len(paid_to) == 3
    [owed] = [m for m in refs if m.user_id not in paid_to]
    assert (await progress(kit, owed.user_id, "invite_fans"))[2] == "over_budget"
    rows = await kit.rows(select(payouts_t.c.user_id, payouts_t.c.status))
    assert sorted(rows) == sorted(
        [(m.user_id, "pending") for m in refs if m != owed] + [(owed.user_id, "owed")]
    )


async def test_spends_and_budgets_read_held_or_not_are_each_cohorts_own(kit: Kit) -> None:
    a, b, c = [await kit.start(chat=-1001 - i, code=f"SPEND-{i}") for i in range(3)]
    async with kit.store.transaction() as tx:
        await tx.cohorts.spend_many({b.id: 25, a.id: 70})
        await tx.commit()
    async with kit.store.transaction() as tx:
        read = await tx.cohorts.read_budgets([c.id, a.id, b.id])
        held = await tx.cohorts.lock_budgets([a.id, b.id, c.id])
    budget = a.budget_minor
    assert read == held == {a.id: (budget, 70), b.id: (budget, 25), c.id: (budget, 0)}


async def test_events_for_unknown_members_are_unmatched(kit: Kit) -> None:
    cohort, [m] = await task_cohort(kit, 1)
    async with kit.store.transaction() as tx:
        ref = await tx.users.ref_code(m.user_id)
    events = [
        IncomingEvent("by-tg", "fan.locked", DAY1, telegram_user_id=987654321),
        IncomingEvent("by-ref", "fan.locked", DAY1, member_ref="NOSUCHREF"),
        IncomingEvent("nobody", "fan.locked", DAY1),
        IncomingEvent("known-ref", "fan.locked", DAY1, member_ref=ref),
    ]

    result = await kit.ingest()("platform", events)

    assert (result.accepted, result.duplicates, result.unmatched) == (4, 0, 3)
    assert await outcomes(kit) == {
        "by-tg": ("unknown_member", None, None),
        "by-ref": ("unknown_member", None, None),
        "nobody": ("unknown_member", None, None),
        "known-ref": ("counted", m.user_id, cohort.id),
    }
    # Kept, not dropped: they wait for their member (tests/integration/test_event_intake.py).
    assert await kit.count(events_t, events_t.c.state == "waiting") == 3
    assert await kit.count(events_t, events_t.c.state == "handled") == 1


async def test_each_event_of_a_batch_is_marked_with_its_own_member_outcome_and_time(
    kit: Kit,
) -> None:
    cohort, [a, b] = await task_cohort(kit, 2)
    stranger = MemberRef(0, 999_999, None)
    events = [*fans(kit, a, 1), *fans(kit, b, 3), *fans(kit, stranger, 1)]

    await kit.ingest()("platform", events)

    rows = await kit.rows(
        select(
            events_t.c.event_id,
            events_t.c.state,
            events_t.c.outcome,
            events_t.c.user_id,
            events_t.c.cohort_id,
            events_t.c.handled_at,
        )
    )
    now = kit.clock.now()
    assert sorted(tuple(r) for r in rows) == sorted(
        [
            (events[0].event_id, "handled", "counted", a.user_id, cohort.id, now),
            *[(e.event_id, "handled", "counted", b.user_id, cohort.id, now) for e in events[1:4]],
            (events[4].event_id, "waiting", "unknown_member", None, None, None),
        ]
    )


async def test_a_member_not_admitted_gets_no_task_stage(kit: Kit) -> None:
    cohort, _ = await task_cohort(kit, 1)
    [joined_only] = await kit.members(1)
    await kit.force_stage(cohort.id, joined_only.user_id, Stage.REPLIED)

    result = await kit.ingest()("platform", fans(kit, joined_only, 3))

    assert result.completions == [] and result.unmatched == 0
    assert {o for o, _, _ in (await outcomes(kit)).values()} == {"no_task_stage"}
    assert {u for _, u, _ in (await outcomes(kit)).values()} == {joined_only.user_id}
    assert await kit.count(progress_t) == 0
    assert await kit.stage(cohort.id, joined_only.user_id) == Stage.REPLIED


async def test_events_after_the_cohort_ends_do_not_count(kit: Kit) -> None:
    cohort, [m] = await task_cohort(kit, 1)
    end = (await kit.cohort(cohort.id)).ends_at
    kit.clock.set(end + timedelta(hours=1))

    await kit.ingest()("platform", fans(kit, m, 3, at=end + timedelta(minutes=1)))

    assert {o for o, _, _ in (await outcomes(kit)).values()} == {"after_cohort_end"}
    assert await ledger(kit) == []


async def test_an_unreachable_member_is_paid_without_a_message(kit: Kit) -> None:
    cohort, [m] = await task_cohort(kit, 1)
    assert m.telegram_id is not None
    kit.messenger.unreachable.add(m.telegram_id)

    [done] = (await kit.ingest()("platform", fans(kit, m, 3))).completions

    assert done.reward_status == "paid"
    assert kit.messenger.notices == []
    assert len(await ledger(kit)) == 1
    assert (await kit.cohort(cohort.id)).spent_minor == 50


async def test_members_finishing_in_one_batch_are_tasked_each_at_their_own_time(
    kit: Kit,
) -> None:
    # Three finish in one batch, one of them after midnight in the cohort's time zone:
    # each is stamped at their own time, and the funnel's days agree with a recount.
    cohort, refs = await task_cohort(kit, 3)
    finished = [DAY1, DAY1 + timedelta(hours=3), DAY1 + timedelta(hours=15)]
    kit.clock.set(DAY2)

    result = await kit.ingest()(
        "platform", [e for m, at in zip(refs, finished, strict=True) for e in fans(kit, m, 3, at)]
    )

    assert len(result.completions) == 3
    rows = await kit.rows(
        select(members_t.c.user_id, members_t.c.stage, members_t.c.tasked_at).where(
            members_t.c.cohort_id == cohort.id
        )
    )
    assert sorted((r.user_id, r.stage, r.tasked_at) for r in rows) == [
        (m.user_id, Stage.TASKED, at + timedelta(minutes=2))
        for m, at in zip(refs, finished, strict=True)
    ]
    assert (await ReconcileRollups(kit.deps)(repair=False)).drifts == []


async def test_concurrent_batches_about_the_same_members_both_go_through(kit: Kit) -> None:
    _, [x, y] = await task_cohort(kit, 2)
    # On PostgreSQL both batches reach their progress rows together (the rendezvous
    # gives up after a second if a lock keeps the other away).
    store = (
        kit.store if kit.dialect == "sqlite" else Rendezvous(kit.store, "tasks", "progress_many", 2)
    )
    ingest = IngestEvents(Deps(store, kit.messenger, kit.clock))  # type: ignore[arg-type]

    results = await asyncio.gather(
        ingest("platform", [kit.event("fan.locked", DAY1, x), kit.event("fan.locked", DAY1, y)]),
        ingest("platform", [kit.event("fan.locked", DAY1, y), kit.event("fan.locked", DAY1, x)]),
        return_exceptions=True,
    )

    assert [r if isinstance(r, BaseException) else r.accepted for r in results] == [2, 2]
    assert (await progress(kit, x.user_id, "invite_fans"))[0] == {"0": 2}
    assert (await progress(kit, y.user_id, "invite_fans"))[0] == {"0": 2}


async def test_overlapping_concurrent_batches_count_each_event_once(kit: Kit) -> None:
    cohort, [m] = await task_cohort(kit, 1)
    events = fans(kit, m, 6)
    # Every event is in two of the batches (a platform retrying while sending new ones).
    batches = [[events[i], events[(i + 1) % 6]] for i in range(6)]

    results = await asyncio.gather(*(kit.ingest()("platform", b) for b in batches))

    assert sum(r.accepted for r in results) == 6
    assert sum(r.duplicates for r in results) == 6
    completions = [c for r in results for c in r.completions]
    assert [(c.task_id, c.reward_status) for c in completions] == [("invite_fans", "paid")]
    assert (await progress(kit, m.user_id, "invite_fans"))[0] == {"0": 3}
    assert (
        sorted(o for o, _, _ in (await outcomes(kit)).values())
        == ["counted"] * 3 + ["no_progress"] * 3
    )
    assert len(await ledger(kit)) == 1
    assert (await kit.cohort(cohort.id)).spent_minor == 50
    assert len(kit.messenger.notices) == 1


async def test_big_batches_racing_in_opposite_orders_both_go_through(kit: Kit) -> None:
    _, [m] = await task_cohort(kit, 1)
    rounds = 3
    for r in range(rounds):
        events = [
            kit.event("link.clicked", DAY1, m, event_id=f"r{r}-{i:05d}", visitor=f"v{r}-{i}")
            for i in range(2500)
        ]

        results = await asyncio.gather(
            kit.ingest()("platform", events),
            kit.ingest()("platform", list(reversed(events))),
            return_exceptions=True,
        )

        assert [
            x if isinstance(x, BaseException) else x.accepted + x.duplicates for x in results
        ] == [
            2500,
            2500,
        ]
        assert sum(x.accepted for x in results if not isinstance(x, BaseException)) == 2500
    assert await kit.count(events_t) == rounds * 2500


@pytest.mark.postgres
async def test_a_member_another_applier_has_in_hand_is_left_for_its_next_batch(kit: Kit) -> None:
    """Two processes' appliers claim different events, but a member's next events can
    fall in the other's batch: the second leaves them pending instead of waiting for the
    whole of the first's transaction, and applies them once it has ended."""
    if kit.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: no other transaction holds a member")
    _, [x, y] = await task_cohort(kit, 2)
    [ex], [ey] = fans(kit, x, 1), fans(kit, y, 1)
    await StoreEvents(kit.deps)("platform", [[ex, ey]])
    apply = ApplyEvents(kit.deps)
    async with kit.store.transaction() as other:  # ends without a commit: lets go
        assert await other.events.hold_members([x.user_id, y.user_id]) == {x.user_id, y.user_id}
        assert await other.events.hold_members([x.user_id]) == {x.user_id}  # its own

    async with kit.store.transaction() as other:  # another applier, with x in hand
        assert await other.events.hold_members([x.user_id]) == {x.user_id}
        first = await apply()
        assert (first.applied, first.deferred) == (1, 1)
        found = await outcomes(kit)
        assert (found[ex.event_id][0], found[ey.event_id][0]) == (None, "counted")
    second = await apply()

    assert (second.applied, second.deferred) == (1, 0)
    found = await outcomes(kit)
    assert (found[ex.event_id][0], found[ey.event_id][0]) == ("counted", "counted")
    assert (await progress(kit, x.user_id, "invite_fans"))[0] == {"0": 1}
    assert (await progress(kit, y.user_id, "invite_fans"))[0] == {"0": 1}
    assert (await apply()).applied == 0


async def test_appliers_side_by_side_share_the_end_of_the_queue(kit: Kit) -> None:
    """With ``least``, a claim takes half of the free pending events once they are fewer
    than twice its limit (and at least ``least``): appliers side by side end together
    instead of one finishing a full batch alone. A single writer (SQLite) takes its
    limit."""
    await StoreEvents(kit.deps)(
        "platform",
        [[IncomingEvent(f"e{n}", "fan.locked", DAY1, None, 10_000 + n) for n in range(100)]],
    )

    async def claim(tx: Any, limit: int, least: int | None = 10) -> list[int]:
        return [row for row, _ in await tx.events.claim(None, limit, least=least)]

    if kit.dialect != "postgresql":
        async with kit.store.transaction() as tx:
            assert len(await claim(tx, 80)) == 80
        return
    async with kit.store.transaction() as first:
        mine = await claim(first, 80)
        assert len(mine) == 50  # half of the 100 free
        async with kit.store.transaction() as second:
            theirs = await claim(second, 80)
            assert len(theirs) == 25  # half of the 50 still free, after the first's
            assert min(theirs) > max(mine)
            async with kit.store.transaction() as third:
                assert len(await claim(third, 80)) == 13  # half of 25, rounded up
                async with kit.store.transaction() as fourth:
                    assert len(await claim(fourth, 80)) == 10  # 12 free: at least 10
                    async with kit.store.transaction() as fifth:
                        assert len(await claim(fifth, 80)) == 2  # what is left
                        async with kit.store.transaction() as sixth:
                            assert await claim(sixth, 80) == []
    async with kit.store.transaction() as tx:  # all let go (no commit): all free again
        assert len(await claim(tx, 80, least=None)) == 80


async def test_the_end_of_the_queue_is_counted_without_the_batches_others_hold(kit: Kit) -> None:
    """The share is reckoned on the events no applier has claimed yet: not on another
    applier's batch lying behind an event that was let go (left for a member another
    batch held), which made the claim take a full batch and leave the others nothing;
    nor on the events let go (they are taken first all the same)."""
    if kit.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: nothing to share")

    async def store(first: int, count: int) -> list[int]:
        [stored] = await StoreEvents(kit.deps)(
            "platform",
            [
                [
                    IncomingEvent(f"e{n}", "fan.locked", DAY1, None, 10_000 + n)
                    for n in range(first, first + count)
                ]
            ],
        )
        return stored.rows

    async def claim(tx: Any, limit: int, **how: Any) -> list[int]:
        return [row for row, _ in await tx.events.claim(how.pop("ids", None), limit, **how)]

    let_go = await store(0, 10)
    held = await store(10, 90)
    fresh = await store(100, 100)
    async with kit.store.transaction() as tx:
        assert await claim(tx, 10, least=5) == let_go  # 200 unclaimed: the limit
        # (not applied: let go when the transaction ends, as an event left for a member
        # another applier holds is)
    async with kit.store.transaction() as other:
        assert len(await claim(other, 90, ids=held)) == 90  # another applier's batch
        async with kit.store.transaction() as tx:
            mine = await claim(tx, 80, least=10)
    # Counted: the first let go (held now) and the 100 never claimed, fewer than twice
    # the limit: half of the 101, the 10 let go first. (Counting the other's 90 as well,
    # it took the limit: 70 of the 100, leaving 30 for the others.)
    assert mine == let_go + fresh[:41]


@pytest.mark.postgres
async def test_events_applied_by_id_wait_for_their_member_instead(kit: Kit) -> None:
    """The bot's own events are applied at once and their outcome answered: none is
    left pending because another applier has the member."""
    if kit.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: no other transaction holds a member")
    _, [x] = await task_cohort(kit, 1)
    async with kit.store.transaction() as other:
        assert await other.events.hold_members([x.user_id]) == {x.user_id}
        result = await kit.ingest()("platform", fans(kit, x, 1))
    assert (result.applied, result.deferred) == (1, 0)
    assert (await progress(kit, x.user_id, "invite_fans"))[0] == {"0": 1}


async def test_stored_events_read_back_as_sent_and_compare_like_any_time(kit: Kit) -> None:
    """Events go to the database by a statement of their own (many rows at once); their
    times must be written exactly as every other time is, since SQLite compares them
    as text."""
    at = datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=UTC)
    sent = [
        kit.event("order.paid", at, event_id="raw-1", note="小店 – tienda", n=[1, 2.5, None]),
        kit.event("order.paid", at.replace(microsecond=0), event_id="raw-2"),
    ]
    (stored,) = await StoreEvents(kit.deps)("platform", [sent])
    assert stored.accepted == 2
    async with kit.store.engine.begin() as conn:
        # The same moment written by SQLAlchemy itself, into another column.
        await conn.execute(update(events_t).values(handled_at=events_t.c.occurred_at))
        await conn.execute(
            update(events_t).where(events_t.c.event_id == "raw-1").values(handled_at=at)
        )
        rows = (
            await conn.execute(
                select(events_t.c.event_id, events_t.c.occurred_at, events_t.c.data).where(
                    events_t.c.occurred_at == at
                )
            )
        ).all()
        same_text = (
            await conn.execute(
                select(func.count()).where(events_t.c.handled_at == events_t.c.occurred_at)
            )
        ).scalar_one()

    assert [(r.event_id, r.occurred_at, r.data) for r in rows] == [
        ("raw-1", at, {"note": "小店 – tienda", "n": [1, 2.5, None]})
    ]
    assert same_text == 2
