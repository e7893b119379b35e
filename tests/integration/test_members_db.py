"""Joins, leaves, activity, the reply-"1" window and admission, over SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from funnels.deps import Deps
from funnels.kernel.messaging import AdmissionsOpen, ScriptPost
from funnels.kernel.stages import Stage
from funnels.people.links import MemberLink
from funnels.warmup.admissions import AnnounceResponders
from funnels.warmup.joins import MemberJoined
from storage.models import MemberActivity
from tests.support.funnel_kit import WARMUP_CHAT, Kit, Rendezvous, members_t, warmup_at

PITCH = warmup_at(2, "20:00")
PITCH_CLOSE = warmup_at(2, "21:00")


async def member_row(kit: Kit, cohort_id: int, user_id: int) -> Any:
    [row] = await kit.rows(
        members_t.select().where(members_t.c.cohort_id == cohort_id, members_t.c.user_id == user_id)
    )
    return row


# ---------------------------------------------------------------- joins


async def test_capacity_is_enforced_in_arrival_order(kit: Kit) -> None:
    cohort = await kit.start(capacity=2)
    a, b, c = await kit.users(3)
    kit.clock.set(warmup_at(1, "08:30"))
    join = kit.join()

    outcome = [
        await join(WARMUP_CHAT, kit.actor(a)),
        await join(WARMUP_CHAT, kit.actor(b), added_by=kit.actor(a)),
        await join(WARMUP_CHAT, kit.actor(c), added_by=kit.actor(a)),
    ]

    assert [(j.user_id, j.outcome) for j in outcome] == [
        (a.user_id, "joined"),
        (b.user_id, "joined"),
        (c.user_id, "full"),
    ]
    assert [j.inviter_id for j in outcome] == [None, a.user_id, a.user_id]
    rows = await kit.rows(members_t.select().where(members_t.c.cohort_id == cohort.id))
    assert sorted(r.user_id for r in rows) == [a.user_id, b.user_id]
    assert {r.user_id: r.inviter_id for r in rows} == {a.user_id: None, b.user_id: a.user_id}
    assert {r.stage for r in rows} == {int(Stage.JOINED)}
    assert {r.joined_at for r in rows} == {warmup_at(1, "08:30")}
    assert (await join(WARMUP_CHAT, kit.actor(c))).outcome == "full"
    assert (await join(WARMUP_CHAT, kit.actor(a))).outcome == "member"


async def test_a_join_is_attributed_to_the_owner_of_the_link_it_came_by(kit: Kit) -> None:
    leader, a, b, c = await kit.users(4)
    cohort = await kit.start(leader=leader)
    join = kit.join()

    assert (await join(WARMUP_CHAT, kit.actor(a))).inviter_id == leader.user_id  # no link
    link = await MemberLink(kit.deps)(kit.actor(a))  # /mylink
    assert link is not None
    by_a = await join(WARMUP_CHAT, kit.actor(b), invite_link=link)
    unknown = await join(WARMUP_CHAT, kit.actor(c), invite_link="https://t.me/+elsewhere")
    own = await join(WARMUP_CHAT, kit.actor(leader))

    assert (by_a.outcome, by_a.inviter_id) == ("joined", a.user_id)
    assert (unknown.outcome, unknown.inviter_id) == ("joined", leader.user_id)
    assert (own.outcome, own.inviter_id) == ("joined", None)  # nobody invites themselves
    rows = await kit.rows(members_t.select().where(members_t.c.cohort_id == cohort.id))
    assert {r.user_id: r.inviter_id for r in rows} == {
        a.user_id: leader.user_id,
        b.user_id: a.user_id,
        c.user_id: leader.user_id,
        leader.user_id: None,
    }


async def test_capacity_holds_when_two_joins_race_for_the_last_seat(kit: Kit) -> None:
    cohort = await kit.start(capacity=2)
    await kit.members(1)
    b, c = await kit.users(2)
    # On PostgreSQL both joins count the seats before either inserts, as two processes
    # (or two concurrently handled chat_member updates) can; SQLite takes turns.
    store = kit.store if kit.dialect == "sqlite" else Rendezvous(kit.store, "members", "count", 2)
    join = MemberJoined(Deps(store, kit.messenger, kit.clock))  # type: ignore[arg-type]

    first, second = await asyncio.gather(
        join(WARMUP_CHAT, kit.actor(b)), join(WARMUP_CHAT, kit.actor(c))
    )

    assert sorted([first.outcome, second.outcome]) == ["full", "joined"]
    async with kit.store.transaction() as tx:
        assert await tx.members.count(cohort.id) == 2


async def test_a_seat_frees_when_a_member_leaves(kit: Kit) -> None:
    cohort = await kit.start(capacity=2)
    _, b = await kit.members(2)
    [c] = await kit.users(1)

    await kit.leave()(WARMUP_CHAT, b.user_id)

    assert (await kit.join()(WARMUP_CHAT, kit.actor(c))).outcome == "joined"
    async with kit.store.transaction() as tx:
        assert await tx.members.count(cohort.id) == 2


async def test_a_rejoin_after_leaving_clears_left_at_and_keeps_the_stage(kit: Kit) -> None:
    cohort = await kit.start()
    [member] = await kit.members(1)
    kit.clock.set(warmup_at(1, "09:30"))
    await kit.chatter()(WARMUP_CHAT, {member.telegram_id: 3})
    kit.clock.set(warmup_at(1, "10:00"))

    await kit.leave()(WARMUP_CHAT, member.user_id)

    row = await member_row(kit, cohort.id, member.user_id)
    assert row.left_at == warmup_at(1, "10:00")
    assert row.stage == Stage.ENGAGED
    kit.clock.set(warmup_at(1, "11:00"))

    joined = await kit.join()(WARMUP_CHAT, kit.actor(member))

    assert (joined.user_id, joined.outcome) == (member.user_id, "rejoined")
    row = await member_row(kit, cohort.id, member.user_id)
    assert row.left_at is None
    assert row.stage == Stage.ENGAGED
    assert row.joined_at == warmup_at(1, "08:00")
    assert row.engaged_at == warmup_at(1, "09:30")
    assert await kit.count(members_t) == 1


async def test_joins_in_a_chat_without_a_cohort_are_ignored(kit: Kit) -> None:
    await kit.start()
    [member] = await kit.users(1)
    joined = await kit.join()(WARMUP_CHAT - 5, kit.actor(member))
    assert (joined.user_id, joined.outcome, joined.cohort_id) == (member.user_id, "no_cohort", None)
    assert await kit.count(members_t) == 0


async def test_activity_is_counted_per_local_day_and_engages(kit: Kit) -> None:
    cohort = await kit.start()
    a, b = await kit.members(2)
    kit.clock.set(warmup_at(1, "23:30"))  # 15:30 UTC: still day 1 in Singapore

    # Keyed by Telegram id, as the bot sees messages; someone the bot does not know (who
    # was in the group before it came), and someone it knows from elsewhere who is not a
    # member of this cohort, are left out.
    (outsider,) = await kit.users(1)
    counts = {a.telegram_id: 2, 4_000_000: 5, outsider.telegram_id: 7}
    assert await kit.chatter()(WARMUP_CHAT, counts) == 1
    assert await kit.chatter()(WARMUP_CHAT, {a.telegram_id: 1}) == 1

    activity = MemberActivity.__table__
    rows = await kit.rows(select(activity.c.user_id, activity.c.day, activity.c.messages))
    assert [tuple(r) for r in rows] == [(a.user_id, date(2026, 3, 2), 3)]
    assert await kit.stage(cohort.id, a.user_id) == Stage.ENGAGED
    assert await kit.stage(cohort.id, b.user_id) == Stage.JOINED
    row = await member_row(kit, cohort.id, a.user_id)
    assert row.engaged_at == warmup_at(1, "23:30")


# ---------------------------------------------------------------- replies


@pytest.mark.parametrize("cached", [False, True], ids=["read_afresh", "cohort_from_a_cache"])
async def test_replies_count_only_inside_the_pitch_window(kit: Kit, cached: bool) -> None:
    cohort = await kit.start()
    a, b = await kit.members(2)
    [stranger] = await kit.users(1)
    # The bot passes the cohort from its cache, read before the pitch went out: the
    # window is still decided by the database.
    stale = await kit.cohort(cohort.id) if cached else None
    record = kit.reply()

    async def reply(chat_id: int, user_id: int, text: str) -> str:
        return await record(chat_id, user_id, text, cohort=stale)

    await kit.run_until(warmup_at(2, "19:00"))

    assert await reply(WARMUP_CHAT, a.user_id, "1") == "closed"  # before the pitch
    assert await kit.stage(cohort.id, a.user_id) == Stage.JOINED

    await kit.tick(PITCH)
    kit.clock.set(PITCH + timedelta(minutes=1))

    assert await reply(WARMUP_CHAT, a.user_id, "10") == "not_answer"
    assert await reply(WARMUP_CHAT, a.user_id, "1 please") == "not_answer"
    assert await reply(WARMUP_CHAT, a.user_id, "1") == "recorded"
    assert await reply(WARMUP_CHAT, a.user_id, "１") == "already"
    assert await reply(WARMUP_CHAT, a.user_id, " 1 ") == "already"
    assert await reply(WARMUP_CHAT, b.user_id, "１") == "recorded"
    assert await reply(WARMUP_CHAT, stranger.user_id, "1") == "not_member"
    assert await reply(WARMUP_CHAT - 5, a.user_id, "1") == "no_cohort"

    row = await member_row(kit, cohort.id, a.user_id)
    assert row.stage == Stage.REPLIED
    assert row.replied_at == PITCH + timedelta(minutes=1)
    assert row.engaged_at == PITCH + timedelta(minutes=1)

    await kit.tick(PITCH_CLOSE)

    assert (await kit.cohort(cohort.id)).pitch_closed_at == PITCH_CLOSE
    [c] = await kit.members(1)
    assert await reply(WARMUP_CHAT, c.user_id, "1") == "closed"
    assert await kit.stage(cohort.id, c.user_id) == Stage.JOINED
    async with kit.store.transaction() as tx:
        assert await tx.members.responders([cohort.id]) == {cohort.id: (2, 2)}


async def test_a_reply_after_the_window_is_closed_even_before_the_close_step_runs(kit: Kit) -> None:
    cohort = await kit.start()
    [member] = await kit.members(1)
    await kit.run_until(PITCH)
    kit.clock.set(PITCH_CLOSE + timedelta(minutes=30))  # the tick is behind: close not run yet

    assert await kit.reply()(WARMUP_CHAT, member.user_id, "1") == "closed"
    cached = await kit.cohort(cohort.id)  # knows the pitch opened; the clock says too late
    assert await kit.reply()(WARMUP_CHAT, member.user_id, "1", cohort=cached) == "closed"
    assert await kit.stage(cohort.id, member.user_id) == Stage.JOINED


async def test_a_pitch_posted_late_keeps_its_whole_reply_window(kit: Kit) -> None:
    cohort = await kit.start()
    [member] = await kit.members(1)
    await kit.run_until(warmup_at(2, "19:00"))
    kit.messenger.sent.clear()

    await kit.tick(warmup_at(2, "22:00"))  # the service was down from 19:30 to 22:00

    assert [s.message for s in kit.messenger.sent] == [
        ScriptPost("Reply 1 to join the task group.", None, "en")
    ]
    kit.clock.set(warmup_at(2, "22:05"))  # five minutes after members saw the pitch
    assert await kit.reply()(WARMUP_CHAT, member.user_id, "1") == "recorded"
    assert await kit.stage(cohort.id, member.user_id) == Stage.REPLIED
    # The window runs its full hour from 22:00: the close waits until 23:00.
    assert (await kit.cohort(cohort.id)).pitch_closed_at is None
    close = await kit.step(cohort.id, "d2_pitch.close")
    assert (close.status, close.due_at) == ("pending", warmup_at(2, "23:00"))
    [late] = await kit.members(1)
    kit.clock.set(warmup_at(2, "22:59"))
    assert await kit.reply()(WARMUP_CHAT, late.user_id, "1") == "recorded"

    await kit.tick(warmup_at(2, "23:00"))

    assert (await kit.cohort(cohort.id)).pitch_closed_at == warmup_at(2, "23:00")
    assert (await kit.step(cohort.id, "d2_pitch.close")).status == "done"
    [too_late] = await kit.members(1)
    assert await kit.reply()(WARMUP_CHAT, too_late.user_id, "1") == "closed"


async def test_admission_takes_only_responders(kit: Kit) -> None:
    cohort = await kit.start()
    responder, silent = await kit.members(2)
    await kit.run_until(PITCH)
    assert await kit.reply()(WARMUP_CHAT, responder.user_id, "1") == "recorded"
    kit.clock.set(PITCH + timedelta(hours=2))
    admit = kit.admit()

    assert await admit(cohort.id, silent.user_id) == "not_replied"
    assert await admit(cohort.id, responder.user_id) == "admitted"
    assert await admit(cohort.id, responder.user_id) == "already"
    [stranger] = await kit.users(1)
    assert await admit(cohort.id, stranger.user_id) == "not_replied"
    assert await admit(cohort.id + 999, responder.user_id) == "no_cohort"

    assert await kit.stage(cohort.id, silent.user_id) == Stage.JOINED
    row = await member_row(kit, cohort.id, responder.user_id)
    assert row.stage == Stage.ADMITTED
    assert row.admitted_at == PITCH + timedelta(hours=2)
    async with kit.store.transaction() as tx:
        assert await tx.members.current_cohort(responder.user_id) == cohort.id
        assert await tx.members.current_cohort(silent.user_id) is None


async def test_stages_never_move_back(kit: Kit) -> None:
    cohort = await kit.start()
    replied, admitted = await kit.members(2)
    await kit.run_until(PITCH)
    for m in (replied, admitted):
        assert await kit.reply()(WARMUP_CHAT, m.user_id, "1") == "recorded"
    assert await kit.admit()(cohort.id, admitted.user_id) == "admitted"
    kit.clock.set(PITCH + timedelta(minutes=5))

    await kit.chatter()(WARMUP_CHAT, {replied.telegram_id: 4, admitted.telegram_id: 1})
    claim_on_closed = await kit.reply()(WARMUP_CHAT, admitted.user_id, "1")

    assert claim_on_closed == "already"
    assert await kit.stage(cohort.id, replied.user_id) == Stage.REPLIED
    assert await kit.stage(cohort.id, admitted.user_id) == Stage.ADMITTED
    async with kit.store.transaction() as tx:
        assert (
            await tx.members.advance(cohort.id, admitted.user_id, Stage.REPLIED, kit.clock.now())
            is False
        )
        assert (
            await tx.members.advance(cohort.id, replied.user_id, Stage.JOINED, kit.clock.now())
            is False
        )
        await tx.commit()
    assert await kit.stage(cohort.id, admitted.user_id) == Stage.ADMITTED


async def test_new_responders_are_announced_in_batches(kit: Kit) -> None:
    await kit.start()
    a, b, c = await kit.members(3)
    await kit.run_until(PITCH)
    kit.messenger.sent.clear()
    reply = kit.reply()

    kit.clock.set(PITCH + timedelta(minutes=1))
    await reply(WARMUP_CHAT, a.user_id, "1")
    await reply(WARMUP_CHAT, b.user_id, "1")
    await kit.tick(PITCH + timedelta(minutes=2))

    assert [s.message for s in kit.messenger.sent] == [AdmissionsOpen(2, 2, "en")]

    kit.clock.set(PITCH + timedelta(minutes=3))
    await reply(WARMUP_CHAT, c.user_id, "1")
    await kit.tick(PITCH + timedelta(minutes=4))  # too soon after the last batch
    await kit.tick(PITCH + timedelta(minutes=6))  # still under 5 minutes
    assert len(kit.messenger.sent) == 1

    await kit.tick(PITCH + timedelta(minutes=7))

    assert [s.message for s in kit.messenger.sent] == [
        AdmissionsOpen(2, 2, "en"),
        AdmissionsOpen(1, 3, "en"),
    ]
    assert {s.chat_id for s in kit.messenger.sent} == {WARMUP_CHAT}
    await kit.tick(PITCH + timedelta(minutes=20))  # nobody new: nothing said
    assert len(kit.messenger.sent) == 2


async def test_of_two_processes_announcing_at_once_one_sends_the_batch(kit: Kit) -> None:
    """Two ticking processes look for pitches to announce at the same moment: the one
    that found the cohort holds it until it has stamped it, the other passes it by."""
    cohort = await kit.start()
    a, b = await kit.members(2)
    await kit.run_until(PITCH)
    kit.clock.set(PITCH + timedelta(minutes=1))
    for member in (a, b):
        assert await kit.reply()(WARMUP_CHAT, member.user_id, "1") == "recorded"
    kit.messenger.sent.clear()
    # On PostgreSQL both look before either stamps, as two processes can; SQLite takes
    # turns.
    store = (
        kit.store
        if kit.dialect == "sqlite"
        else Rendezvous(kit.store, "cohorts", "pitches_to_announce", 2)
    )
    announce = AnnounceResponders(Deps(store, kit.messenger, kit.clock))  # type: ignore[arg-type]

    await asyncio.gather(announce(), announce())

    assert [s.message for s in kit.messenger.sent] == [AdmissionsOpen(2, 2, "en")]
    assert (await kit.cohort(cohort.id)).admissions_noted_at == kit.clock.now()


async def test_pitches_to_announce_are_those_with_a_responder_since_the_last_note(kit: Kit) -> None:
    """One query finds the open pitches with something to announce: a pitch nobody
    answered, one announced too recently, and one whose window closed are left out."""
    quiet = await kit.start(chat=WARMUP_CHAT - 1)
    answered = await kit.start()
    closed = await kit.start(chat=WARMUP_CHAT - 2)
    [a, b] = await kit.members(2)
    [c] = await kit.members(1, chat=WARMUP_CHAT - 2)
    await kit.run_until(PITCH)
    kit.clock.set(PITCH + timedelta(minutes=1))
    assert await kit.reply()(WARMUP_CHAT, a.user_id, "1") == "recorded"
    assert await kit.reply()(WARMUP_CHAT - 2, c.user_id, "1") == "recorded"
    async with kit.store.transaction() as tx:
        await tx.cohorts.close_pitch(closed.id, PITCH + timedelta(minutes=2))
        await tx.commit()

    async def to_announce(noted_before: Any) -> list[int]:
        async with kit.store.transaction() as tx:
            return sorted(c.id for c in await tx.cohorts.pitches_to_announce(noted_before))

    first = PITCH + timedelta(minutes=2)
    assert await to_announce(first) == [answered.id]
    async with kit.store.transaction() as tx:
        await tx.cohorts.note_admissions([answered.id], first)
        await tx.commit()
    # Announced at `first`: nobody new since, however long ago that was.
    assert await to_announce(first + timedelta(hours=1)) == []

    kit.clock.set(first + timedelta(minutes=1))
    assert await kit.reply()(WARMUP_CHAT, b.user_id, "1") == "recorded"
    assert await to_announce(first - timedelta(seconds=1)) == []  # too soon after `first`
    assert await to_announce(first) == [answered.id]
    assert quiet.id not in await to_announce(first + timedelta(hours=1))
