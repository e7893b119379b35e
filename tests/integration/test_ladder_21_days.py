"""A whole 21-day ladder of the shipped script on a virtual clock, over SQLite and
PostgreSQL: the same events fed in order, and fed shuffled, repeated and in batches of
any size with a crash after storing some of them, end in the same place; so do they with
a budget that runs out and is raised, a member who blocked the bot and a payout receiver
that fails for a while (a real local HTTP server). What each
member should end with is worked out from the script alone (the goals folded over the
events, each counted once, inside the task's unlock and the cohort's end)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.clock import SystemClock
from bot.payouts import WebhookSender
from funnels.kernel.money import to_minor
from funnels.kernel.records import CohortRecord, IncomingEvent, MemberRef
from funnels.kernel.stages import Stage
from funnels.ladder.events import CatchUpEvents, IngestEvents, StoreEvents
from funnels.ladder.goals import contributions, evaluate
from funnels.ladder.payouts import DeliverPayouts
from funnels.ladder.rewards import RaiseBudget
from funnels.scripts.library import script_path
from funnels.scripts.loader import load_script
from funnels.scripts.model import Script
from funnels.warmup.admissions import AdmitMember
from storage.models import Payout
from tests.support.funnel_kit import TASK_CHAT, Kit, cohorts_t, ledger_t, progress_t
from tests.support.payout_receiver import payout_receiver

payouts_t = Payout.__table__

LIBRARY = load_script(script_path("seven-plus-twentyone", "en"))
MEMBERS = 12
VISITORS = 130


@dataclass(frozen=True)
class Expected:
    done: set[tuple[int, str]]
    """(user id, task id) of every task met."""
    paid: dict[int, int]
    """Rewards per user id, minor units."""
    sold: set[int]


def oracle(
    script: Script,
    cohort: CohortRecord,
    unlocks: dict[str, datetime],
    members: Sequence[MemberRef],
    events: Sequence[tuple[MemberRef, IncomingEvent]],
) -> Expected:
    """What the script says each member ends with: every distinct event once, in order."""
    done: set[tuple[int, str]] = set()
    paid: dict[int, int] = {}
    sold: set[int] = set()
    unique: set[tuple[int, str, int, str]] = set()
    progress: dict[tuple[int, str], dict[int, int]] = {}
    seen: set[str] = set()
    for member, event in sorted(events, key=lambda pair: pair[1].occurred_at):
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        if event.type == "order.paid":
            sold.add(member.user_id)
        for task in script.tasks.ladder:
            key = (member.user_id, task.id)
            if key in done or not unlocks[task.id] <= event.occurred_at <= cohort.ends_at:
                continue
            values = progress.setdefault(key, {})
            for c in contributions(task.goal, event.type, event.data):
                if c.unique_key is not None:
                    if (member.user_id, task.id, c.leaf, c.unique_key) in unique:
                        continue
                    unique.add((member.user_id, task.id, c.leaf, c.unique_key))
                values[c.leaf] = values.get(c.leaf, 0) + c.amount
            if evaluate(task.goal, values, cohort.currency).done:
                done.add(key)
                if task.reward:
                    paid[member.user_id] = paid.get(member.user_id, 0) + to_minor(
                        task.reward.amount, cohort.currency
                    )
    return Expected(done, paid, sold)


def month_of_events(
    rng: random.Random,
    members: Sequence[MemberRef],
    unlocks: dict[str, datetime],
    end: datetime,
    refs: dict[int, str],
) -> list[tuple[MemberRef, IncomingEvent]]:
    """A member's 21 days: fans, posts, a group and a talk, visitors, orders. Counts hover
    around the goals, and half the events fall within a day of their task's unlock or
    of the cohort's end, where being counted or not depends on the exact time."""
    out: list[tuple[MemberRef, IncomingEvent]] = []
    n = 0
    first = unlocks["invite_fans"]

    def at(task: str) -> datetime:
        if rng.random() < 0.5:
            edge = rng.choice([unlocks[task], end])
            return edge + timedelta(minutes=rng.randrange(-24 * 60, 24 * 60))
        return first + timedelta(minutes=rng.randrange(-2 * 24 * 60, 23 * 24 * 60))

    def add(member: MemberRef, near: str, type_: str, **data: object) -> None:
        """An event of ``type_``, often near the unlock of task ``near``."""
        nonlocal n
        n += 1
        event = IncomingEvent(f"m{n}", type_, at(near), refs[member.user_id], None, data)
        out.append((member, event))

    for member in members:
        for _ in range(rng.randrange(6, 16)):
            add(member, "invite_fans", "fan.locked")
        for _ in range(rng.randrange(0, 3)):
            add(member, "publish_post", "post.published", template=rng.choice(["day3_post", "x"]))
        for _ in range(rng.randrange(0, 3)):
            add(member, "build_group", rng.choice(["group.created", "talk.given"]))
        for _ in range(rng.randrange(150, 320)):
            visitor = f"v{rng.randrange(VISITORS)}"
            add(member, "share_deal", "link.clicked", visitor=visitor, task="share_deal")
        for _ in range(rng.randrange(0, 4)):
            add(member, "first_order", "order.paid", amount=rng.choice([1990, 2500, 4000]))
    return out


async def outcome(kit: Kit, cohort: CohortRecord) -> tuple[set[tuple[int, str]], dict[int, int]]:
    """Tasks met and rewards credited, as stored."""
    rows = await kit.rows(
        select(progress_t.c.user_id, progress_t.c.task_id).where(
            progress_t.c.cohort_id == cohort.id, progress_t.c.completed_at.is_not(None)
        )
    )
    paid: dict[int, int] = {}
    for r in await kit.rows(select(ledger_t.c.user_id, ledger_t.c.amount_minor)):
        paid[r.user_id] = paid.get(r.user_id, 0) + r.amount_minor
    return {(r.user_id, r.task_id) for r in rows}, paid


async def stages(kit: Kit, cohort: CohortRecord, members: Sequence[MemberRef]) -> set[int]:
    return {
        m.user_id
        for m in members
        if (stage := await kit.stage(cohort.id, m.user_id)) is not None and stage >= Stage.SOLD
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_any_order_repeats_and_a_crash_end_where_the_script_says(kit: Kit, seed: int) -> None:
    rng = random.Random(seed)
    cohort = await kit.start(loaded=LIBRARY)
    async with kit.store.transaction() as tx:
        await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT)
        await tx.commit()
    members = await kit.admitted(cohort, MEMBERS - 1)
    [late] = await kit.members(1)  # in the warm-up only; admitted halfway through
    everyone = [*members, late]
    refs = {}
    async with kit.store.transaction() as tx:
        for m in everyone:
            refs[m.user_id] = await tx.users.ref_code(m.user_id)
    unlocks = kit.deps.scripts.unlock_times(cohort)
    script = kit.deps.scripts.get(cohort)
    events = month_of_events(rng, everyone, unlocks, cohort.ends_at, refs)
    kit.clock.set(cohort.ends_at + timedelta(days=3))

    # Shuffled, a third of them sent twice, in batches of 1 to 60; some batches are
    # stored and the process "dies" before applying them.
    stream = [e for _, e in events] + [e for _, e in rng.sample(events, len(events) // 3)]
    rng.shuffle(stream)
    ingest, store, catch_up = IngestEvents(kit.deps), StoreEvents(kit.deps), CatchUpEvents(kit.deps)
    admitted_late = False
    while stream:
        size = rng.randrange(1, 61)
        batch, stream = stream[:size], stream[size:]
        if rng.random() < 0.3:
            await store("platform", [batch])  # crash before applying
        else:
            await ingest("platform", batch)
        if rng.random() < 0.2:
            await catch_up()
        if not admitted_late and len(stream) < len(events) // 2:
            await kit.force_stage(cohort.id, late.user_id, Stage.REPLIED)
            assert await AdmitMember(kit.deps)(cohort.id, late.user_id) == "admitted"
            admitted_late = True
    while (await catch_up()).applied:
        pass

    want = oracle(script, cohort, unlocks, everyone, events)
    done, paid = await outcome(kit, cohort)
    assert want.done, "the generated month should complete some tasks"
    assert done == want.done
    assert paid == want.paid
    assert await stages(kit, cohort, everyone) == want.sold
    # Every reward was paid once, inside the budget.
    assert (await kit.cohort(cohort.id)).spent_minor == sum(want.paid.values())


async def test_the_budget_runs_out_a_member_blocks_the_bot_and_the_receiver_recovers(
    kit: Kit,
) -> None:
    """The same month, with money: the budget runs out halfway (rewards are owed, in
    order), one member has blocked the bot, the platform's payout receiver answers 503
    for a while; ops raise the budget. In the end every reward the script says was earned
    is credited once and delivered once under its ledger key, whoever could be told."""
    rng = random.Random(7)
    cohort = await kit.start(loaded=LIBRARY)
    async with kit.store.transaction() as tx:
        await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT)
        await tx.commit()
    members = await kit.admitted(cohort, MEMBERS)
    refs = {}
    async with kit.store.transaction() as tx:
        for m in members:
            refs[m.user_id] = await tx.users.ref_code(m.user_id)
    blocked = members[0]
    assert blocked.telegram_id is not None
    kit.messenger.unreachable.add(blocked.telegram_id)
    unlocks = kit.deps.scripts.unlock_times(cohort)
    events = month_of_events(rng, members, unlocks, cohort.ends_at, refs)
    want = oracle(kit.deps.scripts.get(cohort), cohort, unlocks, members, events)
    owed_total = sum(want.paid.values())
    # A budget with room for about half of what will be earned.
    async with kit.store.transaction() as tx:
        await tx.conn.execute(
            update(cohorts_t)
            .where(cohorts_t.c.id == cohort.id)
            .values(budget_minor=cohorts_t.c.spent_minor + owed_total // 2)
        )
        await tx.commit()

    async with payout_receiver() as receiver:
        receiver.answers = [503] * 15
        sender = WebhookSender(receiver.url, receiver.secret, SystemClock())
        deliver = DeliverPayouts(kit.deps, sender, owner="test:1", draw=lambda: 0.0)
        kit.clock.set(cohort.ends_at + timedelta(days=1))
        stream = [e for _, e in events] + [e for _, e in rng.sample(events, len(events) // 4)]
        rng.shuffle(stream)
        ingest = IngestEvents(kit.deps)
        while stream:
            size = rng.randrange(1, 80)
            batch, stream = stream[:size], stream[size:]
            await ingest("platform", batch)
            kit.clock.set(kit.clock.now() + timedelta(minutes=7))
            await deliver()
        owed = await kit.count(payouts_t, payouts_t.c.status == "owed")
        assert owed > 0, "half a budget should leave rewards owed"

        raised = await RaiseBudget(kit.deps)(cohort.code, "5000.00")
        assert len(raised.paid) == owed
        for _ in range(200):  # hours of virtual time: every backoff runs out
            kit.clock.set(kit.clock.now() + timedelta(minutes=30))
            await deliver()
            if await kit.count(payouts_t, payouts_t.c.status != "delivered") == 0:
                break
        await sender.close()

    done, paid = await outcome(kit, cohort)
    assert done == want.done
    assert paid == want.paid
    keys = sorted(r.idempotency_key for r in await kit.rows(select(ledger_t.c.idempotency_key)))
    assert sorted(receiver.ids()) == keys  # each reward delivered, once, under its key
    assert receiver.bad_signatures == 0
    assert blocked.user_id in paid or all(u != blocked.user_id for u, _ in want.done)
    told = {ref.user_id for ref, _ in kit.messenger.notices}
    assert blocked.user_id not in told
    assert (await kit.cohort(cohort.id)).spent_minor == sum(want.paid.values())
