"""Launching a cohort: ``/launch`` in a fresh group, the plan of step runs written at
once, and binding the task group with ``/taskgroup``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from funnels.cohorts.ports import CohortsTx
from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.messaging import (
    PERSONAL_TASK_GROUP_RIGHTS,
    TASK_GROUP_RIGHTS,
    WARMUP_RIGHTS,
)
from funnels.kernel.money import to_minor
from funnels.kernel.records import AdmissionMode, CohortRecord, NewCohort
from funnels.kernel.refusals import AlreadyExists, Refused
from funnels.kernel.stages import Role
from funnels.kernel.zones import find_zone
from funnels.people.leaders import leader_id_of
from funnels.people.links import new_invite_link
from funnels.scripts.checks import planned_spend
from funnels.scripts.loader import LoadedScript
from funnels.scripts.model import Script
from funnels.scripts.planner import PlannedStep, local_instant, plan

MAX_DAYS_AHEAD = 366
"""How far ahead a cohort may start: a year; a later date is a typo (and year 9999 is
past the end of the calendar once the ladder's days are added)."""


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
        return await leader_id_of(self.deps, actor, is_admin, "not_leader")

    async def __call__(
        self,
        *,
        chat_id: int,
        actor: Actor,
        is_admin: bool,
        load: Callable[[], LoadedScript],
        start: date | None = None,
        capacity: int | None = None,
        admission: AdmissionMode = "requests",
    ) -> Launched:
        """``start``: warm-up day 1, by default tomorrow in the script's zone (members
        need a day to come in); never in the past, nor more than a year ahead.
        ``admission``: how responders get into the task group (``AdmissionMode``)."""
        now = self.deps.clock.now()
        leader_id = await self.authorize(actor=actor, is_admin=is_admin)
        async with self.deps.uow(CohortsTx).transaction() as tx:
            bound = await tx.cohorts.by_chat(chat_id)
            region_id = await tx.users.region(leader_id)
            parent = await _parent_line(tx, leader_id, is_admin)
        if region_id is None and parent is not None:
            region_id = parent.region_id  # a graduate's line stays in their line's region
        if bound is not None:
            raise Refused("already_bound", code=bound.code)
        missing = await self.deps.messenger.missing_rights(chat_id, WARMUP_RIGHTS)
        if missing:
            raise Refused("missing_rights", missing=tuple(missing))
        loaded = load()  # ScriptError goes to the caller, who shows the problems
        start = _first_day(start, now.astimezone(ZoneInfo(loaded.script.timezone)).date())
        try:
            cohort = await StartCohort(self.deps)(
                loaded,
                start=start,
                code=self.deps.cohort_codes(),
                capacity=capacity,
                warmup_chat_id=chat_id,
                region_id=region_id,
                leader_id=leader_id,
                parent_cohort_id=parent.id if parent else None,
                generation=parent.generation + 1 if parent else 1,
                admission=admission,
            )
        except Refused as refused:
            if refused.code != "already_bound" or refused.params.get("code"):
                raise
            async with self.deps.uow(CohortsTx).transaction() as tx:
                raced = await tx.cohorts.by_chat(chat_id)  # the /launch that won the race
            raise Refused("already_bound", code=raced.code if raced else "?") from None
        link = await new_invite_link(self.deps, cohort, chat_id, "leader", leader_id)
        steps = plan(loaded.script, start, ZoneInfo(cohort.timezone))
        return Launched(cohort, steps, link)


async def _parent_line(tx: CohortsTx, user_id: int, is_admin: bool) -> CohortRecord | None:
    """The cohort a supervisor's new line grows out of: the one they graduated from.
    A leader's (or an admin's) line starts a lineage of its own (None)."""
    if is_admin:
        return None
    role = await tx.users.role(user_id)
    if role is None or role >= Role.LEADER:
        return None
    return await tx.cohorts.graduated_from(user_id)


def _first_day(asked: date | None, today: date) -> date:
    """Warm-up day 1: tomorrow unless asked; never in the past, nor a year ahead."""
    if asked is None:
        return today + timedelta(days=1)
    if asked < today:
        raise Refused("past_date", value=asked.isoformat())
    if asked > today + timedelta(days=MAX_DAYS_AHEAD):
        raise Refused("far_date", value=asked.isoformat(), days=MAX_DAYS_AHEAD)
    return asked


class BindTaskGroup:
    """``/taskgroup CODE`` in the second group: it becomes the cohort's task group, with
    a join-request link that only responders get through; or, for a cohort launched with
    ``admission=personal``, no shared link at all (each responder asks for their own, see
    :mod:`funnels.warmup.personal`), and the bot needs the right to take out whoever
    comes in by a link passed on to them."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def authorize(self, *, actor: Actor, is_admin: bool) -> int:
        """Only leaders (and admins) bind task groups: ``Refused("leader_only")`` for
        anyone else, before the code is read, so strangers cannot probe cohort codes."""
        return await leader_id_of(self.deps, actor, is_admin, "leader_only")

    async def __call__(self, *, chat_id: int, actor: Actor, is_admin: bool, code: str) -> str:
        user_id = await self.authorize(actor=actor, is_admin=is_admin)
        async with self.deps.uow(CohortsTx).transaction() as tx:
            cohort = await tx.cohorts.by_code(code.upper())
            if cohort is None:
                raise Refused("unknown", code=code)
            if cohort.leader_id != user_id and not is_admin:
                raise Refused("not_yours", code=cohort.code)
            here = await tx.cohorts.by_chat(chat_id)
        if here is not None and here.warms_up_in(chat_id):
            raise Refused("is_warmup")
        if here is not None and here.id != cohort.id:
            raise Refused("taken")
        if cohort.task_chat_id is not None and cohort.task_chat_id != chat_id:
            raise Refused("has_one", code=cohort.code)
        needs = PERSONAL_TASK_GROUP_RIGHTS if cohort.admission == "personal" else TASK_GROUP_RIGHTS
        missing = await self.deps.messenger.missing_rights(chat_id, needs)
        if missing:
            raise Refused("missing_rights", missing=tuple(missing))
        if cohort.task_chat_id == chat_id:
            return cohort.code  # bound already: saying so again changes nothing
        async with self.deps.uow(CohortsTx).transaction() as tx:
            try:
                await tx.cohorts.bind_task_chat(cohort.id, chat_id)
                await tx.commit()
            except AlreadyExists:
                raise Refused("taken") from None
        if cohort.admission == "requests":
            await new_invite_link(self.deps, cohort, chat_id, "admission", cohort.leader_id)
        return cohort.code


def cohort_end(script: Script, start: date, tz: ZoneInfo) -> datetime:
    """Midnight after the last task day, local time."""
    return local_instant(start, script.total_days + 1, datetime.min.time(), tz)


class StartCohort:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self,
        loaded: LoadedScript,
        *,
        start: date,
        code: str,
        timezone: str | None = None,
        capacity: int | None = None,
        warmup_chat_id: int | None = None,
        region_id: int | None = None,
        leader_id: int | None = None,
        parent_cohort_id: int | None = None,
        generation: int = 1,
        admission: AdmissionMode = "requests",
    ) -> CohortRecord:
        script = loaded.script
        zone_name = timezone or script.timezone
        tz = find_zone(zone_name)
        if tz is None:
            raise Refused("bad_timezone", timezone=zone_name)
        seats = capacity if capacity is not None else script.capacity
        if seats < 1:
            raise Refused("bad_capacity", capacity=seats)
        budget = to_minor(script.budget.total, script.budget.currency)
        envelopes, rewards = planned_spend(script, capacity)
        if envelopes + rewards > budget:
            # Amounts in minor units: whoever words the refusal formats them.
            raise Refused(
                "over_budget",
                capacity=seats,
                needed=envelopes + rewards,
                budget=budget,
                currency=script.budget.currency,
            )
        steps = plan(script, start, tz)
        new = NewCohort(
            code=code,
            script_id=script.id,
            script_version=script.version,
            script_hash=loaded.content_hash,
            script_body=loaded.text,
            locale=script.locale,
            timezone=zone_name,
            capacity=seats,
            currency=script.budget.currency,
            budget_minor=budget,
            start_date=start,
            ends_at=cohort_end(script, start, tz),
            warmup_chat_id=warmup_chat_id,
            region_id=region_id,
            leader_id=leader_id,
            parent_cohort_id=parent_cohort_id,
            generation=generation,
            admission=admission,
        )
        async with self.deps.uow(CohortsTx).transaction() as tx:
            bound = await tx.cohorts.by_chat(warmup_chat_id) if warmup_chat_id else None
            if bound is not None:
                raise Refused("already_bound", code=bound.code)
            try:
                cohort = await tx.cohorts.create(new, self.deps.clock.now())
            except AlreadyExists:  # another /launch in the same group won the race
                raise Refused("already_bound", code=None) from None
            await tx.steps.add_plan(cohort.id, steps)
            await tx.commit()
        return cohort
