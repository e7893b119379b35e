"""The task group's message of the day over SQLite and PostgreSQL: sent by the run of the
day's first task, once; in doubt, it is not sent again by the day's other runs, nor by
the tick, only by a retry."""

from __future__ import annotations

from datetime import timedelta

from funnels.kernel.messaging import DeliveryError, TasksUnlocked
from funnels.ops.steps import RetryStep
from funnels.people.users import MarkUnreachable
from tests.support.funnel_kit import TASK_CHAT, Kit, task_at


def days_sent(kit: Kit) -> list[list[str]]:
    return [
        [t.task_id for t in s.message.tasks]
        for s in kit.messenger.in_chat(TASK_CHAT)
        if isinstance(s.message, TasksUnlocked)
    ]


async def test_a_days_message_in_doubt_is_sent_again_only_by_a_retry(kit: Kit) -> None:
    cohort = await kit.start()
    async with kit.store.transaction() as tx:
        await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT)
        await tx.commit()
    await kit.run_until(task_at(1, "08:59"))
    kit.messenger.fail_next.append(DeliveryError("timed out", definite=False))

    await kit.tick(task_at(1, "09:00"))

    first, other = (
        await kit.step(cohort.id, "task.invite_fans"),
        await kit.step(cohort.id, "task.visitors"),
    )
    assert first.status == "unknown"
    assert (other.status, (other.outcome or {}).get("note")) == (
        "done",
        "announced with task.invite_fans",
    )
    await kit.tick(task_at(1, "09:30"))
    assert days_sent(kit) == []

    await RetryStep(kit.deps)(cohort.code, "task.invite_fans", by="ops")
    await kit.tick(task_at(1, "09:40"))
    assert days_sent(kit) == [["invite_fans", "visitors"]]
    run = await kit.step(cohort.id, "task.invite_fans")
    assert run.status == "done" and run.outcome is not None
    assert run.outcome["tasks"] == ["invite_fans", "visitors"]

    await kit.run_until(task_at(3, "23:00"))
    assert days_sent(kit) == [["invite_fans", "visitors"], ["first_sale"]]


async def test_without_a_task_group_nothing_is_posted(kit: Kit) -> None:
    cohort = await kit.start()
    await kit.run_until(task_at(1, "10:00"))
    run = await kit.step(cohort.id, "task.invite_fans")
    assert (run.status, (run.outcome or {}).get("note")) == ("done", "no task group bound")
    assert kit.messenger.in_chat(TASK_CHAT) == []


async def test_a_reward_the_member_could_not_be_told_of_is_in_the_next_days_message(
    kit: Kit,
) -> None:
    """A member who blocked the bot hears of their reward in the task group's next
    message; one who was told privately is not named there."""
    cohort = await kit.start()
    async with kit.store.transaction() as tx:
        await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT)
        await tx.commit()
    blocked, told = await kit.admitted(cohort, 2)
    assert blocked.telegram_id is not None
    kit.messenger.unreachable.add(blocked.telegram_id)
    await MarkUnreachable(kit.deps)(blocked.telegram_id)  # as the messenger does on a bounce
    await kit.run_until(task_at(1, "10:00"))
    for member in (blocked, told):
        fans = [kit.event("fan.locked", task_at(1, "10:00"), member) for _ in range(3)]
        [done] = (await kit.ingest()("platform", fans)).completions
        assert done.reward_status == "paid"

    await kit.run_until(task_at(2, "09:30"))

    day1, day2 = [s.message for s in kit.messenger.in_chat(TASK_CHAT)]
    assert isinstance(day1, TasksUnlocked) and isinstance(day2, TasksUnlocked)
    assert day1.rewarded == ()
    assert day2.rewarded == ((f"Member {blocked.telegram_id}", "Invite three fans"),)
    assert day2.rewarded_more == 0


async def test_untold_rewards_list_a_few_and_count_them_all(kit: Kit) -> None:
    """The list stops at its limit; the count is of every untold reward in the window."""
    cohort = await kit.start()
    members = await kit.admitted(cohort, 3)
    await kit.run_until(task_at(1, "10:00"))
    for member in members:
        assert member.telegram_id is not None
        await MarkUnreachable(kit.deps)(member.telegram_id)
    for member in members:
        fans = [kit.event("fan.locked", task_at(1, "10:00"), member) for _ in range(3)]
        [done] = (await kit.ingest()("platform", fans)).completions
        assert done.reward_status == "paid"
    since, until = task_at(1, "00:00"), kit.clock.now() + timedelta(seconds=1)

    async with kit.store.transaction() as tx:
        listed, total = await tx.ledger.untold_rewards(cohort.id, since, until, 2)
        assert total == 3
        assert [name for name, _ in listed] == [f"Member {m.telegram_id}" for m in members[:2]]
        assert await tx.ledger.untold_rewards(cohort.id, until, until, 2) == ([], 0)
