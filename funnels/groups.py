"""What leaders and admins do with groups: launch a cohort, bind its task group, pause,
resume and read a cohort's status, grant leaders; and what happens when Telegram moves
or takes a group away (a migration to a supergroup, the bot removed or demoted).

Refusals are :class:`Refused` with a ``code`` the bot renders from its catalogue; the
use cases never speak a language themselves.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from funnels.brief import cut
from funnels.cohorts import CohortError, Deps, StartCohort
from funnels.pauses import PauseReason
from funnels.planner import PlannedStep, plan
from funnels.ports import (
    TASK_GROUP_RIGHTS,
    WARMUP_RIGHTS,
    AlreadyExists,
    CohortPaused,
    CohortRecord,
    DeliveryError,
    InviteLinkRecord,
    RegionRecord,
    Right,
    StepRunRecord,
    Transaction,
)
from funnels.script_loader import LoadedScript
from funnels.stages import Role, Stage
from funnels.zones import find_zone

_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
MAX_DAYS_AHEAD = 366
"""How far ahead a cohort may start: a year; a later date is a typo (and year 9999 is
past the end of the calendar once the ladder's days are added)."""


def new_cohort_code(length: int = 6) -> str:
    """A short code without look-alike characters, typed by leaders in /taskgroup."""
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(length))


class Refused(Exception):
    """An expected refusal. ``code`` names it (the bot's catalogue has the words);
    ``params`` fill in the details. Nothing was changed."""

    def __init__(self, code: str, /, **params: object) -> None:
        super().__init__(code, params)
        self.code = code
        self.params = params


@dataclass(frozen=True, slots=True)
class Actor:
    """A Telegram user doing something, as the update describes them."""

    telegram_id: int
    name: str
    language: str | None = None


async def _user_id(tx: Transaction, actor: Actor, at: datetime) -> int:
    return (await tx.members.ensure_user(actor.telegram_id, actor.name, actor.language, at)).user_id


async def _leader_id(deps: Deps, actor: Actor, is_admin: bool, refusal: str) -> int:
    """The user id of a leader (or an admin) acting; ``Refused(refusal)`` for anyone else.
    The one check of who may lead, shared by the commands that need it."""
    async with deps.store.transaction() as tx:
        user_id = await _user_id(tx, actor, deps.clock.now())
        await tx.commit()
        if is_admin or await tx.members.role(user_id) >= Role.LEADER:
            return user_id
    raise Refused(refusal)


@dataclass(frozen=True, slots=True)
class Launched:
    cohort: CohortRecord
    steps: list[PlannedStep]
    invite_link: str | None


class LaunchCohort:
    """``/launch`` in a group: a registered leader starts a cohort there.

    Checks in the order a leader can act on them: who asks, whether the group is free,
    whether the bot has the rights it needs, whether the script is valid. The script is
    loaded only after the first three pass, so a stranger learns nothing about it. A
    handler calls :meth:`authorize` before it even reads the command's options.
    """

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def authorize(self, *, actor: Actor, is_admin: bool) -> int:
        """The leader's user id; ``Refused("not_leader")`` for anyone but a leader or admin."""
        return await _leader_id(self.deps, actor, is_admin, "not_leader")

    async def __call__(
        self,
        *,
        chat_id: int,
        actor: Actor,
        is_admin: bool,
        load: Callable[[], LoadedScript],
        start: date | None = None,
        capacity: int | None = None,
    ) -> Launched:
        """``start``: warm-up day 1, by default tomorrow in the script's zone (members
        need a day to come in); never in the past, nor more than a year ahead."""
        now = self.deps.clock.now()
        leader_id = await self.authorize(actor=actor, is_admin=is_admin)
        async with self.deps.store.transaction() as tx:
            bound = await tx.cohorts.by_chat(chat_id)
            region_id = await tx.members.region(leader_id)
        if bound is not None:
            raise Refused("already_bound", code=bound.code)
        missing = await self.deps.messenger.missing_rights(chat_id, WARMUP_RIGHTS)
        if missing:
            raise Refused("missing_rights", missing=tuple(missing))
        loaded = load()  # ScriptError goes to the caller, who shows the problems
        today = now.astimezone(ZoneInfo(loaded.script.timezone)).date()
        if start is None:
            start = today + timedelta(days=1)
        elif start < today:
            raise Refused("past_date", value=start.isoformat())
        elif start > today + timedelta(days=MAX_DAYS_AHEAD):
            raise Refused("far_date", value=start.isoformat(), days=MAX_DAYS_AHEAD)
        try:
            cohort = await StartCohort(self.deps)(
                loaded,
                start=start,
                code=(self.deps.code_factory or new_cohort_code)(),
                capacity=capacity,
                warmup_chat_id=chat_id,
                region_id=region_id,
                leader_id=leader_id,
            )
        except CohortError as exc:
            async with self.deps.store.transaction() as tx:
                raced = await tx.cohorts.by_chat(chat_id)
            if raced is not None:  # another /launch in this group won the race
                raise Refused("already_bound", code=raced.code) from None
            raise Refused("refused", reason=str(exc)) from None
        link = await _new_link(self.deps, cohort, chat_id, "leader", leader_id)
        steps = plan(loaded.script, start, ZoneInfo(cohort.timezone))
        return Launched(cohort, steps, link)


async def _new_link(
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
    async with deps.store.transaction() as tx:
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
        async with self.deps.store.transaction() as tx:
            user_id = await _user_id(tx, actor, now)
            await tx.commit()
            cohort_id = await tx.members.latest_cohort(user_id)
            cohort = await tx.cohorts.get(cohort_id) if cohort_id else None
            if cohort is None or cohort.warmup_chat_id is None:
                return None
            existing = await tx.links.find(cohort.id, "member", user_id)
        if existing is not None:
            return existing.link
        return await _new_link(self.deps, cohort, cohort.warmup_chat_id, "member", user_id)


class BindTaskGroup:
    """``/taskgroup CODE`` in the second group: it becomes the cohort's task group, with
    a join-request link that only responders get through."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def authorize(self, *, actor: Actor, is_admin: bool) -> int:
        """Only leaders (and admins) bind task groups: ``Refused("leader_only")`` for
        anyone else, before the code is read, so strangers cannot probe cohort codes."""
        return await _leader_id(self.deps, actor, is_admin, "leader_only")

    async def __call__(self, *, chat_id: int, actor: Actor, is_admin: bool, code: str) -> str:
        user_id = await self.authorize(actor=actor, is_admin=is_admin)
        async with self.deps.store.transaction() as tx:
            cohort = await tx.cohorts.by_code(code.upper())
            if cohort is None:
                raise Refused("unknown", code=code)
            if cohort.leader_id != user_id and not is_admin:
                raise Refused("not_yours", code=cohort.code)
            here = await tx.cohorts.by_chat(chat_id)
        if here is not None and here.warmup_chat_id == chat_id:
            raise Refused("is_warmup")
        if here is not None and here.id != cohort.id:
            raise Refused("taken")
        if cohort.task_chat_id is not None and cohort.task_chat_id != chat_id:
            raise Refused("has_one", code=cohort.code)
        missing = await self.deps.messenger.missing_rights(chat_id, TASK_GROUP_RIGHTS)
        if missing:
            raise Refused("missing_rights", missing=tuple(missing))
        if cohort.task_chat_id == chat_id:
            return cohort.code  # bound already: saying so again changes nothing
        async with self.deps.store.transaction() as tx:
            try:
                await tx.cohorts.bind_task_chat(cohort.id, chat_id)
                await tx.commit()
            except AlreadyExists:
                raise Refused("taken") from None
        await _new_link(self.deps, cohort, chat_id, "admission", cohort.leader_id)
        return cohort.code


async def _leaders_cohort(deps: Deps, chat_id: int, actor: Actor, is_admin: bool) -> CohortRecord:
    now = deps.clock.now()
    async with deps.store.transaction() as tx:
        user_id = await _user_id(tx, actor, now)
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
        cohort = await _leaders_cohort(self.deps, chat_id, actor, is_admin)
        if cohort.status == "paused":
            raise Refused("already", code=cohort.code)
        if cohort.status != "running":
            raise Refused("not_running", code=cohort.code, status=cohort.status)
        async with self.deps.store.transaction() as tx:
            await tx.cohorts.set_status(
                cohort.id,
                "paused",
                PauseReason("paused_by_leader").stored(),
                self.deps.clock.now(),
            )
            await tx.commit()
        return cohort


class ResumeCohort:
    """Run a paused cohort again, once the bot has what it needs in the group; steps
    missed meanwhile follow their late policy at the next tick."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, *, chat_id: int, actor: Actor, is_admin: bool) -> CohortRecord:
        cohort = await _leaders_cohort(self.deps, chat_id, actor, is_admin)
        if cohort.status != "paused":
            raise Refused("not_paused", code=cohort.code)
        if cohort.warmup_chat_id is not None:
            missing = await self.deps.messenger.missing_rights(cohort.warmup_chat_id, WARMUP_RIGHTS)
            if missing:
                raise Refused("still_missing", missing=tuple(missing))
        async with self.deps.store.transaction() as tx:
            await tx.cohorts.set_status(cohort.id, "running", None, self.deps.clock.now())
            await tx.commit()
        return cohort


@dataclass(frozen=True, slots=True)
class StatusView:
    cohort: CohortRecord
    day: int
    days: int
    counts: dict[Stage, int]
    next_step: StepRunRecord | None
    attention: list[StepRunRecord]


class CohortStatus:
    """``/status``: where the cohort stands, what runs next, what needs a look."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, *, chat_id: int, actor: Actor, is_admin: bool) -> StatusView:
        cohort = await _leaders_cohort(self.deps, chat_id, actor, is_admin)
        script = self.deps.scripts.get(cohort)
        today = self.deps.clock.now().astimezone(ZoneInfo(cohort.timezone)).date()
        day = (today - cohort.start_date).days + 1
        async with self.deps.store.transaction() as tx:
            counts = await tx.members.stage_counts(cohort.id)
            next_step = await tx.steps.next_pending(cohort.id)
            attention = await tx.steps.attention(cohort.id)
        return StatusView(
            cohort,
            max(0, min(day, script.total_days)),
            script.total_days,
            counts,
            next_step,
            attention,
        )


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
        async with self.deps.store.transaction() as tx:
            region = await tx.regions.by_code(region_code.upper())
            if region is None:
                codes = ", ".join(r.code for r in await tx.regions.all()) or "-"
                raise Refused("unknown_region", code=region_code, codes=codes)
            user_id = await _user_id(tx, target, now)
            await tx.members.grant(user_id, Role.LEADER, region.id)
            await tx.commit()
        return region


class AddRegion:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, code: str, name: str, timezone: str, weekly_target: int = 1
    ) -> RegionRecord:
        if find_zone(timezone) is None:
            raise Refused("bad_timezone", timezone=timezone)
        code, name = code.strip(), name.strip()
        bare = code.replace("-", "").replace("_", "")
        if not (code.isascii() and bare.isalnum() and len(code) <= 32):
            raise Refused("bad_region", code=cut(code, 40))
        if not name or len(name) > 128 or not name.isprintable():
            raise Refused("bad_region_name", name=cut(name, 40))
        if weekly_target < 0:
            raise Refused("bad_region", code=code)
        async with self.deps.store.transaction() as tx:
            try:
                region = await tx.regions.add(
                    code.strip().upper(), name, timezone, weekly_target, self.deps.clock.now()
                )
            except AlreadyExists:
                raise Refused("region_exists", code=code.upper()) from None
            await tx.commit()
        return region


class FollowMigration:
    """A basic group became a supergroup (new chat id): the cohort keeps running there."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, old_chat_id: int, new_chat_id: int) -> list[int]:
        async with self.deps.store.transaction() as tx:
            moved = await tx.cohorts.move_chat(old_chat_id, new_chat_id)
            await tx.links.move_chat(old_chat_id, new_chat_id)
            await tx.commit()
        return moved


class GroupLost:
    """The bot was removed from a group or lost rights it needs there: pause the running
    cohort bound to it and tell the leader privately (the group cannot be told)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self,
        chat_id: int,
        reason: Literal["removed", "demoted", "cannot_post"],
        missing: Sequence[Right] = (),
    ) -> CohortRecord | None:
        now = self.deps.clock.now()
        async with self.deps.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(chat_id)
            if cohort is None or cohort.status != "running":
                return None
            detail = PauseReason(reason, tuple(missing)).stored()
            await tx.cohorts.set_status(cohort.id, "paused", detail, now)
            leader = await tx.members.ref(cohort.leader_id) if cohort.leader_id else None
            await tx.commit()
        if leader is not None:
            await self.deps.messenger.notify(
                leader,
                CohortPaused(cohort.code, reason, tuple(missing), leader.language or cohort.locale),
            )
        return cohort
