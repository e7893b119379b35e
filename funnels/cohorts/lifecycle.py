"""A cohort's life in its groups: paused and resumed by its leader, paused when the bot
loses its group, following its group's move to a supergroup."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from funnels.cohorts.pauses import PauseReason
from funnels.cohorts.ports import CohortsTx
from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.messaging import WARMUP_RIGHTS, CohortPaused, Right
from funnels.kernel.records import CohortRecord, MemberRef
from funnels.kernel.refusals import Refused
from funnels.people.users import user_id_of

LostGroup = Literal["removed", "demoted", "cannot_post"]


async def pause_within(
    tx: CohortsTx, cohort: CohortRecord, reason: PauseReason, at: datetime
) -> MemberRef | None:
    """Pause ``cohort`` inside the caller's unit of work; returns the leader to tell once
    it commits (None when the cohort has no leader). Every pause goes through here."""
    await tx.cohorts.set_status(cohort.id, "paused", reason.stored(), at)
    return await tx.users.ref(cohort.leader_id) if cohort.leader_id else None


async def tell_leader_lost(
    deps: Deps,
    leader: MemberRef | None,
    cohort: CohortRecord,
    why: LostGroup,
    missing: Sequence[Right] = (),
) -> None:
    """Privately, since the group cannot be told: the bot lost the cohort's group."""
    if leader is not None:
        locale = leader.language or cohort.locale
        await deps.messenger.notify(leader, CohortPaused(cohort.code, why, tuple(missing), locale))


async def leaders_cohort(deps: Deps, chat_id: int, actor: Actor, is_admin: bool) -> CohortRecord:
    now = deps.clock.now()
    async with deps.uow(CohortsTx).transaction() as tx:
        user_id = await user_id_of(tx, actor, now)
        await tx.commit()
        cohort = await tx.cohorts.by_chat(chat_id)
    if cohort is None:
        raise Refused("none")
    if cohort.leader_id != user_id and not is_admin:
        raise Refused("leader_only")
    return cohort


class PauseCohort:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, *, chat_id: int, actor: Actor, is_admin: bool) -> CohortRecord:
        cohort = await leaders_cohort(self.deps, chat_id, actor, is_admin)
        if cohort.status == "paused":
            raise Refused("already", code=cohort.code)
        if cohort.status != "running":
            raise Refused("not_running", code=cohort.code, status=cohort.status)
        async with self.deps.uow(CohortsTx).transaction() as tx:
            now = self.deps.clock.now()
            await pause_within(tx, cohort, PauseReason("paused_by_leader"), now)
            await tx.commit()
        return cohort


class ResumeCohort:
    """Run a paused cohort again, once the bot has what it needs in the group; steps
    missed meanwhile follow their late policy at the next tick."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, *, chat_id: int, actor: Actor, is_admin: bool) -> CohortRecord:
        cohort = await leaders_cohort(self.deps, chat_id, actor, is_admin)
        if cohort.status != "paused":
            raise Refused("not_paused", code=cohort.code)
        if cohort.warmup_chat_id is not None:
            missing = await self.deps.messenger.missing_rights(cohort.warmup_chat_id, WARMUP_RIGHTS)
            if missing:
                raise Refused("still_missing", missing=tuple(missing))
        async with self.deps.uow(CohortsTx).transaction() as tx:
            await tx.cohorts.set_status(cohort.id, "running", None, self.deps.clock.now())
            await tx.commit()
        return cohort


class FollowMigration:
    """A basic group became a supergroup (new chat id): the cohort keeps running there
    (and a member's own group for the group task stays theirs)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, old_chat_id: int, new_chat_id: int) -> list[int]:
        async with self.deps.uow(CohortsTx).transaction() as tx:
            moved = await tx.cohorts.move_chat(old_chat_id, new_chat_id)
            await tx.links.move_chat(old_chat_id, new_chat_id)
            await tx.member_groups.move_chat(old_chat_id, new_chat_id)
            await tx.commit()
        return moved


class GroupLost:
    """The bot was removed from a group or lost rights it needs there: pause the running
    cohort bound to it and tell the leader privately (the group cannot be told)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, chat_id: int, why: LostGroup, missing: Sequence[Right] = ()
    ) -> CohortRecord | None:
        now = self.deps.clock.now()
        async with self.deps.uow(CohortsTx).transaction() as tx:
            cohort = await tx.cohorts.by_chat(chat_id)
            if cohort is None or cohort.status != "running":
                return None
            leader = await pause_within(tx, cohort, PauseReason(why, tuple(missing)), now)
            await tx.commit()
        await tell_leader_lost(self.deps, leader, cohort, why, missing)
        return cohort
