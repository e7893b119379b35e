"""Leaders: who may launch cohorts (leaders, granted by an admin in a region, and
supervisors, promoted by the ladder)."""

from __future__ import annotations

from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.records import RegionRecord
from funnels.kernel.refusals import Refused
from funnels.kernel.stages import Role
from funnels.people.ports import PeopleTx
from funnels.people.users import user_id_of


def leads_lines(role: Role | None) -> bool:
    """Who may launch and run lines: leaders, and supervisors (graduates who launch lines
    of their own, the self-cycling part of the funnel)."""
    return role is not None and role >= Role.SUPERVISOR


async def leader_id_of(deps: Deps, actor: Actor, is_admin: bool, refusal: str) -> int:
    """The user id of a leader (or an admin) acting; ``Refused(refusal)`` for anyone else.
    The one check of who may lead, shared by the commands that need it."""
    async with deps.uow(PeopleTx).transaction() as tx:
        user_id = await user_id_of(tx, actor, deps.clock.now())
        await tx.commit()
        role = await tx.users.role(user_id)
        if is_admin or leads_lines(role):
            return user_id
    raise Refused(refusal)


class GrantLeader:
    """An admin makes a user a leader in a region (``/grant_leader``, ``leader add``)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @staticmethod
    def authorize(*, is_admin: bool) -> None:
        """Only admins grant: ``Refused("not_admin")`` for anyone else, whatever they typed."""
        if not is_admin:
            raise Refused("not_admin")

    async def __call__(self, *, target: Actor, region_code: str, is_admin: bool) -> RegionRecord:
        self.authorize(is_admin=is_admin)
        now = self.deps.clock.now()
        async with self.deps.uow(PeopleTx).transaction() as tx:
            region = await tx.regions.by_code(region_code.upper())
            if region is None:
                codes = ", ".join(r.code for r in await tx.regions.all()) or "-"
                raise Refused("unknown_region", code=region_code, codes=codes)
            user_id = await user_id_of(tx, target, now)
            await tx.users.grant(user_id, Role.LEADER, region.id)
            await tx.commit()
        return region


class RevokeLeader:
    """An admin takes a leader's rights away (``leader remove``): they go back to what the
    ladder gave them, shopkeeper at most, so they cannot /launch from their next command
    on (every command reads the role afresh). Their cohorts run on."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, *, telegram_id: int, is_admin: bool) -> Role:
        """The role they have now. ``Refused("not_leader")`` for someone who is not one."""
        GrantLeader.authorize(is_admin=is_admin)
        async with self.deps.uow(PeopleTx).transaction() as tx:
            user = await tx.users.by_telegram(telegram_id)
            role = await tx.users.role(user.user_id) if user else None
            if user is None or role != Role.LEADER:
                raise Refused("not_leader", id=telegram_id)
            now_role = min(await tx.users.earned(user.user_id), Role.SHOPKEEPER)
            await tx.users.demote(user.user_id, now_role)
            await tx.commit()
        return now_role


class MayLead:
    """Whether someone may launch cohorts (a leader, a supervisor, or a bootstrap admin),
    without making a user of them."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, actor: Actor, is_admin: bool) -> bool:
        if is_admin:
            return True
        async with self.deps.uow(PeopleTx).transaction() as tx:
            user = await tx.users.by_telegram(actor.telegram_id)
            role = await tx.users.role(user.user_id) if user else None
        return leads_lines(role)
