"""The group task in a member's own group, over SQLite and PostgreSQL: the bot added by a
member in the task stage registers the group and counts it at once and daily, records
``group.created`` at 50 people, gives the task's talk on the owner's ``/talk`` with the
warm-up's talk runner, records ``talk.given``, says goodbye and leaves. Everyone else
is declined politely, and the bot leaves too when the cohort ends."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from funnels.cohorts.lifecycle import FollowMigration
from funnels.cohorts.member_groups import (
    BotAddedToGroup,
    BotLeftGroup,
    StartGroupTalk,
)
from funnels.kernel.actor import Actor
from funnels.kernel.messaging import (
    ChatUnavailable,
    DeliveryError,
    GroupTaskNotice,
    RewardNotice,
    ScriptPost,
)
from funnels.kernel.records import CohortRecord, MemberRef
from funnels.ops.steps import RetryStep
from funnels.scripts.loader import load_script_text
from storage.models import MemberGroup
from tests.support.funnel_kit import TASK_CHAT, Kit, events_t, ledger_t, script_text, task_at

GROUP_TASK = """\
    - id: build_group
      title: A group of 50 and a talk
      how: Add the bot to a group of your own, reach 50 people, then send /talk there.
      unlock: {day: 1, time: "09:00"}
      goal:
        all:
          - {event: group.created, count: 1}
          - {event: talk.given, count: 1}
      reward: {amount: "0.30"}
      talk:
        speaker: Ana
        title: Why we shop together
        parts:
          - text: "First part of the group talk."
          - after: 2m
            text: "Second part of the group talk."
"""
OWN = -100_700
OTHER = -100_701
groups_t = MemberGroup.__table__


async def task_stage(
    kit: Kit, n: int = 1, *, at: str = "12:00"
) -> tuple[CohortRecord, list[MemberRef]]:
    kit.loaded = load_script_text(script_text(budget="2.00") + GROUP_TASK, "mini.yaml")
    cohort = await kit.start()
    async with kit.store.transaction() as tx:
        await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT)
        await tx.commit()
    refs = await kit.admitted(cohort, n)
    await kit.run_until(task_at(1, at))  # the warm-up's steps and the unlocks are behind
    kit.messenger.sent.clear()
    return cohort, refs


def notes(kit: Kit, chat: int) -> list[str]:
    return [
        s.message.note
        for s in kit.messenger.in_chat(chat)
        if isinstance(s.message, GroupTaskNotice)
    ]


async def group_row(kit: Kit, chat: int = OWN) -> dict[str, object]:
    [row] = await kit.rows(select(groups_t).where(groups_t.c.chat_id == chat))
    return dict(row._mapping)


async def event_ids(kit: Kit, type_: str) -> list[str]:
    rows = await kit.rows(select(events_t.c.event_id).where(events_t.c.type == type_))
    return [r.event_id for r in rows]


async def test_the_group_is_counted_at_once_and_daily_and_created_at_50(kit: Kit) -> None:
    cohort, [owner] = await task_stage(kit)
    kit.messenger.member_counts[OWN] = 31  # 30 people and the bot
    assert await BotAddedToGroup(kit.deps)(OWN, kit.actor(owner)) == "counting"
    row = await group_row(kit)
    assert (row["state"], row["member_count"], row["owner_id"], row["task_id"]) == (
        "counting",
        30,
        owner.user_id,
        "build_group",
    )
    assert row["checked_at"] == task_at(1, "12:00")
    assert notes(kit, OWN) == ["welcome"]
    assert [s.message.count for s in kit.messenger.in_chat(OWN)] == [30]  # type: ignore[union-attr]

    # Within the day nothing is counted again, however often the tick runs.
    kit.messenger.member_counts[OWN] = 60
    await kit.tick(task_at(1, "20:00"))
    assert (await group_row(kit))["member_count"] == 30
    assert await event_ids(kit, "group.created") == []

    # A day later it is counted again: 50 people, so the group counts as created.
    kit.messenger.member_counts[OWN] = 51
    await kit.tick(task_at(2, "12:00"))
    row = await group_row(kit)
    assert (row["state"], row["member_count"]) == ("ready", 50)
    assert await event_ids(kit, "group.created") == [
        f"group.created:{cohort.id}:{owner.user_id}:{OWN}"
    ]
    assert notes(kit, OWN) == ["welcome", "ready"]
    await kit.tick(task_at(3, "12:00"))  # a ready group is not counted again
    assert await event_ids(kit, "group.created") == [
        f"group.created:{cohort.id}:{owner.user_id}:{OWN}"
    ]


async def test_the_owners_talk_is_given_part_by_part_then_the_bot_leaves(kit: Kit) -> None:
    cohort, [owner, guest] = await task_stage(kit, 2)
    kit.messenger.member_counts[OWN] = 20
    await BotAddedToGroup(kit.deps)(OWN, kit.actor(owner))
    talk = StartGroupTalk(kit.deps)

    assert (await talk(OWN, kit.actor(guest))).outcome == "owner_only"
    too_small = await talk(OWN, kit.actor(owner))
    assert (too_small.outcome, too_small.count, too_small.needed) == ("too_small", 19, 50)
    assert await kit.count(groups_t, groups_t.c.state == "talking") == 0

    # The /talk itself counts the group again: no need to wait for the daily count.
    kit.messenger.member_counts[OWN] = 55
    assert (await talk(OWN, kit.actor(owner))).outcome == "started"
    assert (await talk(OWN, kit.actor(owner))).outcome == "under_way"
    assert await event_ids(kit, "group.created") != []

    source = f"grouptalk.{(await group_row(kit))['id']}"
    await kit.tick(task_at(1, "12:00"))
    first = [
        s.message.text for s in kit.messenger.in_chat(OWN) if isinstance(s.message, ScriptPost)
    ]
    assert first == ["Why we shop together\n— Ana\n\nFirst part of the group talk."]
    assert (await kit.step(cohort.id, source)).status == "done"
    await kit.tick(task_at(1, "12:01"))
    assert (await kit.step(cohort.id, f"{source}.p1")).status == "pending"  # its 2 minutes

    await kit.tick(task_at(1, "12:02"))
    posts = [
        s.message.text for s in kit.messenger.in_chat(OWN) if isinstance(s.message, ScriptPost)
    ]
    assert posts[1:] == ["Second part of the group talk."]
    assert await event_ids(kit, "talk.given") == [f"talk.given:{cohort.id}:{owner.user_id}:{OWN}"]
    assert notes(kit, OWN)[-1] == "goodbye"
    assert kit.messenger.left == [OWN]
    row = await group_row(kit)
    assert (row["state"], row["left_at"]) == ("given", task_at(1, "12:02"))

    # Both halves done: the task pays at once and tells the member.
    rewards = await kit.rows(select(ledger_t.c.ref, ledger_t.c.amount_minor))
    assert [(r.ref, r.amount_minor) for r in rewards] == [("build_group", 30)]
    assert any(isinstance(m, RewardNotice) for _, m in kit.messenger.notices)
    assert (await kit.cohort(cohort.id)).status == "running"

    # The group is no group task any more.
    assert (await talk(OWN, kit.actor(owner))).outcome == "not_a_group"


async def test_someone_with_no_open_group_task_is_declined_and_the_bot_leaves(kit: Kit) -> None:
    cohort, [owner] = await task_stage(kit)
    [stranger] = await kit.users(1)
    kit.messenger.member_counts[OTHER] = 80
    assert await BotAddedToGroup(kit.deps)(OTHER, kit.actor(stranger)) == "not_in_task"
    assert notes(kit, OTHER) == ["not_in_task"] and kit.messenger.left == [OTHER]
    assert await kit.count(groups_t) == 0

    # One group per member and task: a second one is declined.
    kit.messenger.member_counts[OWN] = 10
    assert await BotAddedToGroup(kit.deps)(OWN, kit.actor(owner)) == "counting"
    assert await BotAddedToGroup(kit.deps)(OWN, kit.actor(owner)) == "already"
    assert await BotAddedToGroup(kit.deps)(-100_702, kit.actor(owner)) == "has_group"
    assert kit.messenger.left == [OTHER, -100_702]
    assert await kit.count(groups_t) == 1

    # A leader setting up a group for a cohort is left alone, quietly.
    kit.messenger.sent.clear()
    led = await BotAddedToGroup(kit.deps)(-100_703, kit.actor(stranger), may_lead=True)
    assert led == "quiet" and kit.messenger.sent == [] and -100_703 not in kit.messenger.left

    # /talk in a group that is nobody's group task gets a pointer, nothing else.
    assert (await StartGroupTalk(kit.deps)(OTHER, kit.actor(stranger))).outcome == "not_a_group"
    assert cohort.status == "running"


async def test_a_group_task_not_open_yet_is_declined(kit: Kit) -> None:
    _, [owner] = await task_stage(kit, at="08:00")  # the task unlocks at 09:00
    kit.messenger.member_counts[OWN] = 70
    assert await BotAddedToGroup(kit.deps)(OWN, kit.actor(owner)) == "not_open"
    assert notes(kit, OWN) == ["not_open"] and kit.messenger.left == [OWN]
    assert await event_ids(kit, "group.created") == []


async def test_the_bot_leaves_when_the_cohort_ends(kit: Kit) -> None:
    cohort, [owner] = await task_stage(kit)
    kit.messenger.member_counts[OWN] = 12
    await BotAddedToGroup(kit.deps)(OWN, kit.actor(owner))
    await kit.tick(cohort.ends_at - timedelta(minutes=1))
    assert kit.messenger.left == []
    await kit.tick(cohort.ends_at)
    assert notes(kit, OWN)[-1] == "ended" and kit.messenger.left == [OWN]
    assert (await group_row(kit))["left_at"] == cohort.ends_at
    await kit.tick(cohort.ends_at + timedelta(days=1))
    assert kit.messenger.left == [OWN]  # once


async def test_losing_the_group_mid_talk_fails_the_part_not_the_cohort(kit: Kit) -> None:
    cohort, [owner] = await task_stage(kit)
    kit.messenger.member_counts[OWN] = 51
    assert await BotAddedToGroup(kit.deps)(OWN, kit.actor(owner)) == "ready"
    assert (await StartGroupTalk(kit.deps)(OWN, kit.actor(owner))).outcome == "started"
    kit.messenger.fail_next.append(ChatUnavailable("Forbidden: bot was kicked", "removed"))
    await kit.tick(task_at(1, "12:00"))
    source = f"grouptalk.{(await group_row(kit))['id']}"
    assert (await kit.step(cohort.id, source)).status == "failed"
    assert (await kit.step(cohort.id, f"{source}.p1")).status == "held"
    assert (await kit.cohort(cohort.id)).status == "running"
    assert (await group_row(kit))["left_at"] is not None
    assert await event_ids(kit, "talk.given") == []


async def test_the_bot_removed_from_the_group_is_recorded(kit: Kit) -> None:
    _, [owner] = await task_stage(kit)
    kit.messenger.member_counts[OWN] = 5
    await BotAddedToGroup(kit.deps)(OWN, kit.actor(owner))
    assert await BotLeftGroup(kit.deps)(OWN) is True
    assert (await group_row(kit))["left_at"] == task_at(1, "12:00")
    assert await BotLeftGroup(kit.deps)(OWN) is False
    # Added again later, the group is registered anew.
    assert (
        await BotAddedToGroup(kit.deps)(OWN, Actor(owner.telegram_id or 0, "Owner")) == "counting"
    )


async def test_a_talk_part_in_doubt_holds_the_rest_until_ops_retry_it(kit: Kit) -> None:
    cohort, [owner] = await task_stage(kit)
    kit.messenger.member_counts[OWN] = 51
    await BotAddedToGroup(kit.deps)(OWN, kit.actor(owner))
    await StartGroupTalk(kit.deps)(OWN, kit.actor(owner))
    kit.messenger.fail_next.append(DeliveryError("timed out", definite=False))
    await kit.tick(task_at(1, "12:00"))
    source = f"grouptalk.{(await group_row(kit))['id']}"
    assert (await kit.step(cohort.id, source)).status == "unknown"
    await kit.tick(task_at(1, "12:05"))
    assert (await kit.step(cohort.id, f"{source}.p1")).status == "held"
    assert await event_ids(kit, "talk.given") == []

    decided = await RetryStep(kit.deps)(cohort.code, source, by="ops")
    assert decided.resumed == [f"{source}.p1"]
    await kit.run_until(task_at(1, "12:30"))
    assert (await kit.step(cohort.id, f"{source}.p1")).status == "done"
    assert await event_ids(kit, "talk.given") == [f"talk.given:{cohort.id}:{owner.user_id}:{OWN}"]
    assert kit.messenger.left == [OWN]


async def test_a_member_group_that_becomes_a_supergroup_stays_theirs(kit: Kit) -> None:
    _, [owner] = await task_stage(kit)
    kit.messenger.member_counts[OWN] = 60
    await BotAddedToGroup(kit.deps)(OWN, kit.actor(owner))
    assert await FollowMigration(kit.deps)(OWN, -100_799_000) == []  # no cohort moved
    assert (await group_row(kit, -100_799_000))["state"] == "ready"
    assert (await StartGroupTalk(kit.deps)(-100_799_000, kit.actor(owner))).outcome == "started"
