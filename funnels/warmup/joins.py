"""Members entering and leaving the warm-up group, each join attributed to whoever
invited them (the link's owner, the member who added them, or the leader)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.records import Arrival, CohortRecord, MemberRef, Seat
from funnels.warmup.admissions import AdmitMember
from funnels.warmup.personal import JoinByPersonalLink, PersonalJoinOutcome
from funnels.warmup.ports import WarmupTx

JoinOutcome = Seat | Literal["no_cohort"]


class RecordLeave:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, chat_id: int, user_id: int) -> None:
        async with self.deps.uow(WarmupTx).transaction() as tx:
            cohort = await tx.cohorts.warming_up_in(chat_id)
            if cohort is not None:
                await tx.members.leave(cohort.id, user_id, self.deps.clock.now())
                await tx.commit()


@dataclass(frozen=True, slots=True)
class Joined:
    outcome: JoinOutcome | PersonalJoinOutcome
    cohort_id: int | None
    user_id: int
    inviter_id: int | None
    language: str | None = None
    """The member's locale as stored (their /lang choice, else their app's)."""


class MemberJoined:
    """A ``chat_member`` join, in the warm-up group (attributed to the link's owner, or
    whoever added the member, or else the leader: every member has an inviter) or in the
    task group (admission, for responders; by a personal link, see
    :class:`~funnels.warmup.personal.JoinByPersonalLink`)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self,
        chat_id: int,
        member: Actor,
        *,
        invite_link: str | None = None,
        added_by: Actor | None = None,
    ) -> Joined:
        now = self.deps.clock.now()
        async with self.deps.uow(WarmupTx).transaction() as tx:
            cohort = await tx.cohorts.by_chat(chat_id)
            user = await tx.users.ensure_user(member.telegram_id, member.name, member.language, now)
            if cohort is None or cohort.task_chat_id == chat_id:
                link = await tx.links.get(invite_link) if invite_link and cohort else None
                await tx.commit()  # the user row; admission is a unit of work of its own
            else:
                return await self._join_warmup(tx, cohort, user, member, invite_link, added_by, now)
        if cohort is None:
            return Joined("no_cohort", None, user.user_id, None, user.language)
        # After the unit of work above has ended: on SQLite one runs at a time, and
        # one opened inside another would wait for it forever.
        if link is not None and link.kind == "personal" and link.cohort_id == cohort.id:
            outcome = await JoinByPersonalLink(self.deps)(cohort, user, link)
            return Joined(outcome, cohort.id, user.user_id, None, user.language)
        admitted = await AdmitMember(self.deps)(cohort.id, user.user_id)
        return Joined(admitted, cohort.id, user.user_id, None, user.language)

    async def _join_warmup(
        self,
        tx: WarmupTx,
        cohort: CohortRecord,
        user: MemberRef,
        member: Actor,
        invite_link: str | None,
        added_by: Actor | None,
        now: datetime,
    ) -> Joined:
        inviter = cohort.leader_id
        link = await tx.links.get(invite_link) if invite_link else None
        if link is not None and link.cohort_id == cohort.id and link.owner_id is not None:
            inviter = link.owner_id
        elif added_by is not None and added_by.telegram_id != member.telegram_id:
            adder = await tx.users.ensure_user(
                added_by.telegram_id, added_by.name, added_by.language, now
            )
            inviter = adder.user_id
        if inviter == user.user_id:
            inviter = None  # the leader joining their own group invited nobody
        seats = await tx.members.join(
            cohort.id, [Arrival(user.user_id, inviter)], cohort.capacity, now
        )
        await tx.commit()
        return Joined(seats[user.user_id], cohort.id, user.user_id, inviter, user.language)
