"""Graduation and self-cycling over SQLite and PostgreSQL: the script's rule makes a
supervisor, a supervisor launches a line of their own, and the new cohort records the
cohort it grew out of and its generation."""

from __future__ import annotations

import pytest

from funnels.cohorts.launch import LaunchCohort
from funnels.cohorts.status import CohortStatus
from funnels.kernel.actor import Actor
from funnels.kernel.refusals import Refused
from funnels.kernel.stages import Role, Stage
from funnels.people.leaders import GrantLeader, MayLead, RevokeLeader
from funnels.people.regions import AddRegion
from funnels.scripts.loader import LoadedScript, load_script_text
from tests.support.funnel_kit import TASK_CHAT, Kit, script_text, task_at

SUPERVISOR_TASK = """\
    - id: lead_a_team
      title: Two sales
      how: Sell twice through your link.
      unlock: {day: 2, time: "09:00"}
      goal: {event: order.paid, count: 2}
      promote: supervisor
"""
OWN_GROUP = -100_900
NEXT_GROUP = -100_901


def with_supervisor_rule() -> LoadedScript:
    return load_script_text(script_text() + SUPERVISOR_TASK, "mini.yaml")


async def graduate(kit: Kit) -> tuple[int, int]:
    """A cohort (in region SEA) whose member sells twice on task day 2: (cohort id, the
    member's Telegram id)."""
    kit.loaded = with_supervisor_rule()
    async with kit.store.transaction() as tx:
        region = await tx.regions.add("SEA", "Southeast Asia", "Asia/Singapore", 1, kit.clock.now())
        await tx.commit()
    cohort = await kit.start(region_id=region.id)
    async with kit.store.transaction() as tx:
        await tx.cohorts.bind_task_chat(cohort.id, TASK_CHAT)
        await tx.commit()
    [member] = await kit.admitted(cohort, 1)
    kit.clock.set(task_at(2, "12:00"))
    ingest = kit.ingest()
    await ingest("shop", [kit.event("order.paid", task_at(2, "10:00"), member)])
    assert await kit.stage(cohort.id, member.user_id) == Stage.SHOPKEEPER
    result = await ingest("shop", [kit.event("order.paid", task_at(2, "11:00"), member)])
    assert [(c.task_id, c.promoted_to) for c in result.completions] == [
        ("lead_a_team", "supervisor")
    ]
    assert await kit.stage(cohort.id, member.user_id) == Stage.SUPERVISOR
    async with kit.store.transaction() as tx:
        assert await tx.users.role(member.user_id) == Role.SUPERVISOR
    assert member.telegram_id is not None
    return cohort.id, member.telegram_id


async def launch(kit: Kit, chat: int, telegram_id: int, *, is_admin: bool = False) -> int:
    use = LaunchCohort(kit.deps)
    launched = await use(
        chat_id=chat,
        actor=kit.actor_of(telegram_id),
        is_admin=is_admin,
        load=lambda: kit.loaded,
    )
    return launched.cohort.id


async def test_a_supervisor_launches_a_line_of_the_next_generation(kit: Kit) -> None:
    parent_id, supervisor = await graduate(kit)
    child_id = await launch(kit, OWN_GROUP, supervisor)
    child = await kit.cohort(child_id)
    parent = await kit.cohort(parent_id)
    assert (child.parent_cohort_id, child.generation) == (parent_id, 2)
    assert child.region_id == parent.region_id is not None  # the line stays in its region
    assert parent.generation == 1 and parent.parent_cohort_id is None
    async with kit.store.transaction() as tx:
        leader = await tx.users.by_telegram(supervisor)
    assert leader is not None and child.leader_id == leader.user_id

    # /status in the new line names where it came from.
    view = await CohortStatus(kit.deps)(
        chat_id=OWN_GROUP, actor=kit.actor_of(supervisor), is_admin=False
    )
    assert view.parent is not None and view.parent.code == parent.code
    assert view.cohort.generation == 2

    # A graduate of the second generation starts the third.
    [member] = await kit.admitted(child, 1)
    await kit.force_stage(child_id, member.user_id, Stage.SUPERVISOR)
    async with kit.store.transaction() as tx:
        await tx.users.set_role_at_least(member.user_id, Role.SUPERVISOR)
        await tx.commit()
    assert member.telegram_id is not None
    grandchild = await kit.cohort(await launch(kit, NEXT_GROUP, member.telegram_id))
    assert (grandchild.parent_cohort_id, grandchild.generation) == (child_id, 3)


async def test_a_leaders_line_is_generation_one(kit: Kit) -> None:
    _, supervisor = await graduate(kit)
    async with kit.store.transaction() as tx:
        ref = await tx.users.by_telegram(supervisor)
        assert ref is not None
        await tx.users.set_role_at_least(ref.user_id, Role.LEADER)  # granted leader since
        await tx.commit()
    own = await kit.cohort(await launch(kit, OWN_GROUP, supervisor))
    assert (own.parent_cohort_id, own.generation) == (None, 1)
    view = await CohortStatus(kit.deps)(
        chat_id=OWN_GROUP, actor=kit.actor_of(supervisor), is_admin=False
    )
    assert view.parent is None


async def test_a_shopkeeper_may_not_launch(kit: Kit) -> None:
    cohort = await kit.start()
    [member] = await kit.admitted(cohort, 1)
    kit.clock.set(task_at(2, "12:00"))
    await kit.ingest()("shop", [kit.event("order.paid", task_at(2, "10:00"), member)])
    assert await kit.stage(cohort.id, member.user_id) == Stage.SHOPKEEPER
    assert member.telegram_id is not None
    with pytest.raises(Refused) as refused:
        await launch(kit, OWN_GROUP, member.telegram_id)
    assert refused.value.code == "not_leader"
    async with kit.store.transaction() as tx:
        assert await tx.cohorts.by_chat(OWN_GROUP) is None


async def test_a_removed_leader_who_graduated_keeps_shopkeeper_and_nothing_more(
    kit: Kit,
) -> None:
    sea = await AddRegion(kit.deps)("SEAX", "South-East Asia", "Asia/Singapore", 1)
    cohort = await kit.start(region_id=sea.id)
    [grad] = await kit.members(1)
    await kit.force_stage(cohort.id, grad.user_id, Stage.SUPERVISOR)
    actor = Actor(grad.telegram_id or 0, "Grad")
    await GrantLeader(kit.deps)(target=actor, region_code="SEAX", is_admin=True)
    with pytest.raises(Refused) as not_admin:
        await RevokeLeader(kit.deps)(telegram_id=actor.telegram_id, is_admin=False)
    assert not_admin.value.code == "not_admin"
    assert await RevokeLeader(kit.deps)(telegram_id=actor.telegram_id, is_admin=True) == (
        Role.SHOPKEEPER
    )
    assert not await MayLead(kit.deps)(actor, is_admin=False)  # no line of their own either
