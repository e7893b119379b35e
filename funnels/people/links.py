"""Invite links: the leader's and each member's own link into the warm-up group."""

from __future__ import annotations

from typing import Literal

from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.messaging import DeliveryError
from funnels.kernel.records import CohortRecord, InviteLinkRecord
from funnels.people.ports import PeopleTx
from funnels.people.users import user_id_of


async def new_invite_link(
    deps: Deps,
    cohort: CohortRecord,
    chat_id: int,
    kind: Literal["leader", "member", "admission", "personal"],
    owner_id: int | None,
) -> str | None:
    """Create an invite link and remember whose it is; None if Telegram said no (the
    cohort runs anyway, joins by other links are attributed to the leader)."""
    try:
        link = await deps.messenger.create_invite_link(
            chat_id,
            f"{cohort.code} {kind}",
            join_request=kind == "admission",
            member_limit=1 if kind == "personal" else None,
        )
    except DeliveryError:
        return None
    async with deps.uow(PeopleTx).transaction() as tx:
        await tx.links.add(
            InviteLinkRecord(link, chat_id, cohort.id, owner_id, kind), deps.clock.now()
        )
        await tx.commit()
    return link


class MemberLink:
    """A member's own invite link into their warm-up group (``/mylink``): made once,
    then the same link every time."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, actor: Actor) -> str | None:
        now = self.deps.clock.now()
        async with self.deps.uow(PeopleTx).transaction() as tx:
            user_id = await user_id_of(tx, actor, now)
            await tx.commit()
            cohort_id = await tx.members.latest_cohort(user_id)
            cohort = await tx.cohorts.get(cohort_id) if cohort_id else None
            if cohort is None or cohort.warmup_chat_id is None:
                return None
            existing = await tx.links.find(cohort.id, "member", user_id)
        if existing is not None:
            return existing.link
        return await new_invite_link(self.deps, cohort, cohort.warmup_chat_id, "member", user_id)
