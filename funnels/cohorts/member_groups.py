"""The group task in a member's own group ("build a group of 50 and give a talk").

The member adds the bot to a group of their own. The bot registers it for the member's
group task, counts its members at once and then daily (from the tick), and records
``group.created`` when there are enough. On the owner's ``/talk`` there, the task's talk
material goes out part by part with the warm-up's talk runner (one step run per part);
after the last part the bot records ``talk.given``, says goodbye and leaves. It also
leaves, with a word, when the cohort ends; a group added by someone with no open group
task gets a polite word and the bot leaves at once. Both events go through
``IngestEvents`` with ids made from the cohort, member and chat, so a repeat is a
duplicate and never counted twice.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from funnels.cohorts.ports import CohortsTx
from funnels.cohorts.talks import Outcome, post_talk_part
from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.messaging import ChatUnavailable, DeliveryError, GroupTaskNote, GroupTaskNotice
from funnels.kernel.records import (
    CohortRecord,
    IncomingEvent,
    MemberGroupRecord,
    MemberRef,
    PlanKind,
    PlanStage,
    StepRunRecord,
)
from funnels.ladder.events import IngestEvents
from funnels.scripts.model import Script, Task
from funnels.scripts.planner import PlannedStep

MEMBERS_NEEDED = 50
"""People the group needs (the bot not counted) for ``group.created``."""
COUNT_EVERY = timedelta(days=1)
"""How often a group still short of members is counted again."""
EVENT_SOURCE = "groups"

Declined = Literal["not_in_task", "not_open", "done", "has_group"]
TalkAsked = Literal[
    "started", "not_a_group", "owner_only", "too_small", "under_way", "given", "no_talk", "gone"
]


def group_task(script: Script) -> Task | None:
    """The ladder's group task: the first task with talk material, or whose goal counts
    ``group.created``."""
    for task in script.tasks.ladder:
        if task.talk is not None or "group.created" in task.goal.events():
            return task
    return None


@dataclass(frozen=True, slots=True)
class _Context:
    group: MemberGroupRecord
    owner: MemberRef
    cohort: CohortRecord

    @property
    def locale(self) -> str:
        return self.owner.language or self.cohort.locale


class _Groups:
    """What the use cases below share: reading a group with its owner and cohort,
    counting, recording events, speaking in the group and leaving it."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def context(self, group: MemberGroupRecord) -> _Context:
        async with self.deps.uow(CohortsTx).transaction() as tx:
            owner = await tx.users.ref(group.owner_id)
            cohort = await tx.cohorts.get(group.cohort_id)
        assert owner is not None and cohort is not None  # foreign keys
        return _Context(group, owner, cohort)

    async def say(self, ctx: _Context, note: GroupTaskNote, count: int = 0) -> None:
        await self.say_in(
            ctx.group.chat_id, GroupTaskNotice(note, ctx.locale, count, MEMBERS_NEEDED)
        )

    async def say_in(self, chat_id: int, notice: GroupTaskNotice) -> None:
        # A word the group may miss: what the bot does next does not depend on it.
        with contextlib.suppress(DeliveryError):
            await self.deps.messenger.send(chat_id, notice)

    async def leave(self, ctx: _Context, note: GroupTaskNote | None) -> None:
        """Say ``note`` (if any), leave the group and record that the bot left."""
        if note is not None:
            await self.say(ctx, note)
        await self.deps.messenger.leave(ctx.group.chat_id)
        await self.mark_left(ctx.group)

    async def mark_left(self, group: MemberGroupRecord) -> None:
        async with self.deps.uow(CohortsTx).transaction() as tx:
            await tx.member_groups.mark_left(group.id, self.deps.clock.now())
            await tx.commit()

    async def record(self, ctx: _Context, event_type: str) -> None:
        """``group.created`` or ``talk.given`` for the owner, once per cohort, owner and chat."""
        g = ctx.group
        event = IncomingEvent(
            event_id=f"{event_type}:{g.cohort_id}:{g.owner_id}:{g.chat_id}",
            type=event_type,
            occurred_at=self.deps.clock.now(),
            telegram_user_id=ctx.owner.telegram_id,
            data={"chat": g.chat_id},
        )
        await IngestEvents(self.deps)(EVENT_SOURCE, [event])

    async def count(self, ctx: _Context) -> int | None:
        """Count the group's people now; at ``MEMBERS_NEEDED`` record ``group.created``
        (before the state moves on: a crash in between records it again, a duplicate).
        None when the bot is not in the group any more (recorded as left)."""
        now = self.deps.clock.now()
        try:
            people = max(await self.deps.messenger.member_count(ctx.group.chat_id) - 1, 0)
        except ChatUnavailable:
            await self.mark_left(ctx.group)
            return None
        except DeliveryError:
            people = ctx.group.member_count or 0  # Telegram did not answer: next time
        if people >= MEMBERS_NEEDED and ctx.group.state == "counting":
            await self.record(ctx, "group.created")
        async with self.deps.uow(CohortsTx).transaction() as tx:
            await tx.member_groups.counted(ctx.group.id, people, now)
            if people >= MEMBERS_NEEDED:
                await tx.member_groups.move(ctx.group.id, "counting", "ready")
            await tx.commit()
        return people

    async def finish_talk(self, ctx: _Context) -> None:
        """The talk's last part is out: record ``talk.given``, say goodbye, leave."""
        await self.record(ctx, "talk.given")
        async with self.deps.uow(CohortsTx).transaction() as tx:
            moved = await tx.member_groups.move(ctx.group.id, "talking", "given")
            await tx.commit()
        if moved:
            await self.leave(ctx, "goodbye")


class BotAddedToGroup:
    """The bot was added to a group that is no cohort's: a member's own group for their
    group task, registered and counted at once; anyone else's is declined politely and
    the bot leaves (a leader's stays: it is to be a cohort's group).

    Answers ``counting`` or ``ready`` (registered), ``already`` (registered before),
    ``gone`` (removed meanwhile), ``quiet`` (a leader's group), or why it was declined."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.groups = _Groups(deps)

    async def __call__(self, chat_id: int, adder: Actor, *, may_lead: bool = False) -> str:
        """``may_lead``: the adder leads lines (or is an admin); a group of theirs that
        is no group task is one they are setting up for a cohort, left alone, quietly."""
        now = self.deps.clock.now()
        async with self.deps.uow(CohortsTx).transaction() as tx:
            owner = await tx.users.by_telegram(adder.telegram_id)
            cohort_id = await tx.members.current_cohort(owner.user_id) if owner else None
            cohort = await tx.cohorts.get(cohort_id) if cohort_id else None
            there = await tx.member_groups.active_in(chat_id)
            if there is not None and owner is not None and there.owner_id == owner.user_id:
                return "already"
            if there is not None:  # the bot left unnoticed and someone else added it back
                await tx.member_groups.mark_left(there.id, now)
            declined, task = await self._check(tx, owner, cohort, now)
            group = None
            if declined is None and owner is not None and cohort is not None and task:
                group = await tx.member_groups.add(chat_id, owner.user_id, cohort.id, task.id, now)
            await tx.commit()
        if group is None and may_lead:
            return "quiet"
        if group is None:
            locale = (owner.language if owner else None) or adder.language or "en"
            await self.groups.say_in(
                chat_id, GroupTaskNotice(declined or "not_in_task", locale, 0, MEMBERS_NEEDED)
            )
            await self.deps.messenger.leave(chat_id)
            return declined or "not_in_task"
        ctx = await self.groups.context(group)
        people = await self.groups.count(ctx)
        if people is None:
            return "gone"
        ready = people >= MEMBERS_NEEDED
        await self.groups.say(ctx, "ready" if ready else "welcome", people)
        return "ready" if ready else "counting"

    async def _check(
        self,
        tx: CohortsTx,
        owner: MemberRef | None,
        cohort: CohortRecord | None,
        now: datetime,
    ) -> tuple[Declined | None, Task | None]:
        """Why the group cannot be the member's group task (None: it can), and the task."""
        if owner is None or cohort is None:
            return "not_in_task", None
        task = group_task(self.deps.scripts.get(cohort))
        if task is None:
            return "not_in_task", None
        if now < self.deps.scripts.unlock_times(cohort)[task.id]:
            return "not_open", task
        progress = (await tx.tasks.for_member(cohort.id, owner.user_id)).get(task.id)
        if progress is not None and progress.completed_at is not None:
            return "done", task
        if await tx.member_groups.active_of(cohort.id, owner.user_id, task.id):
            return "has_group", task
        return None, task


class BotLeftGroup:
    """The bot was removed from a member's group (or left it): recorded, nothing said."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, chat_id: int) -> bool:
        async with self.deps.uow(CohortsTx).transaction() as tx:
            group = await tx.member_groups.active_in(chat_id)
            if group is None:
                return False
            await tx.member_groups.mark_left(group.id, self.deps.clock.now())
            await tx.commit()
        return True


@dataclass(frozen=True, slots=True)
class TalkAnswer:
    outcome: TalkAsked
    count: int = 0
    needed: int = MEMBERS_NEEDED


class StartGroupTalk:
    """The owner's ``/talk`` in their group: once it has enough members, the task's
    talk is planned as step runs (the first part due now) for the tick to give."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.groups = _Groups(deps)

    async def __call__(self, chat_id: int, actor: Actor) -> TalkAnswer:
        async with self.deps.uow(CohortsTx).transaction() as tx:
            group = await tx.member_groups.active_in(chat_id)
            asker = await tx.users.by_telegram(actor.telegram_id)
        if group is None:
            return TalkAnswer("not_a_group")
        if asker is None or asker.user_id != group.owner_id:
            return TalkAnswer("owner_only")
        if group.state in ("talking", "given"):
            return TalkAnswer("under_way" if group.state == "talking" else "given")
        ctx = await self.groups.context(group)
        if group.state == "counting":
            people = await self.groups.count(ctx)
            if people is None:
                return TalkAnswer("gone")
            if people < MEMBERS_NEEDED:
                return TalkAnswer("too_small", people)
        script = self.deps.scripts.get(ctx.cohort)
        talk = script.task(group.task_id).talk
        if talk is None:
            return TalkAnswer("no_talk")
        runs = self._plan(ctx, script, group)
        async with self.deps.uow(CohortsTx).transaction() as tx:
            if not await tx.member_groups.move(group.id, "ready", "talking"):
                return TalkAnswer("under_way")  # another /talk got there first
            await tx.steps.add_plan(ctx.cohort.id, runs)
            await tx.commit()
        return TalkAnswer("started")

    def _plan(self, ctx: _Context, script: Script, group: MemberGroupRecord) -> list[PlannedStep]:
        talk = script.task(group.task_id).talk
        assert talk is not None
        tz = ZoneInfo(ctx.cohort.timezone)
        now = self.deps.clock.now()
        day = max((now.astimezone(tz).date() - ctx.cohort.start_date).days + 1, 1)
        task_day = max(day - script.warmup.days, 1)
        runs, due = [], now
        for index, part in enumerate(talk.parts):
            due = due + part.after if index else due  # the first part now, then its pauses
            key = group.talk_source if index == 0 else f"{group.talk_source}.p{index}"
            runs.append(
                PlannedStep(
                    key=key,
                    source=group.talk_source,
                    kind=PlanKind.GROUP_TALK_PART,
                    stage=PlanStage.TASKS,
                    day=task_day,
                    due_at=due,
                    local_at=due.astimezone(tz),
                    part=index,
                )
            )
        return runs


class GroupTalkPart:
    """A due part of a talk in a member's group (run by the tick's executor); after the
    last part, ``talk.given`` and goodbye. Losing the group fails the part; it never
    pauses the cohort, whose own groups are fine."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.groups = _Groups(deps)

    async def __call__(self, run: StepRunRecord, cohort: CohortRecord, script: Script) -> Outcome:
        group_id = MemberGroupRecord.id_of_talk(run.source)
        async with self.deps.uow(CohortsTx).transaction() as tx:
            group = await tx.member_groups.get(group_id)
        if group is None or group.left_at is not None:
            raise DeliveryError("the bot is no longer in the member's group", definite=True)
        talk = script.task(group.task_id).talk
        if talk is None:
            raise DeliveryError(f"task {group.task_id!r} has no talk", definite=True)
        try:
            audience = f"{cohort.code}:{group.owner_id}"
            outcome = await post_talk_part(
                self.deps, run, talk, group.chat_id, cohort.locale, audience
            )
        except ChatUnavailable as exc:
            await self.groups.mark_left(group)
            raise DeliveryError(f"the member's group: {exc.reason}", definite=True) from None
        if (run.part or 0) == len(talk.parts) - 1:
            await self.groups.finish_talk(await self.groups.context(group))
        return outcome


class TendMemberGroups:
    """From the tick: count groups still short of members once a day; finish a talk
    whose last part went out but was not followed up (a crash in between); leave the
    groups of cohorts that ended."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.groups = _Groups(deps)

    async def __call__(self) -> int:
        now = self.deps.clock.now()
        async with self.deps.uow(CohortsTx).transaction() as tx:
            due = await tx.member_groups.needing_care(now, now - COUNT_EVERY)
        for group in due:
            ctx = await self.groups.context(group)
            if ctx.cohort.status in ("finished", "cancelled") or ctx.cohort.ends_at <= now:
                await self.groups.leave(ctx, "ended")
            elif group.state == "counting":
                people = await self.groups.count(ctx)
                if people is not None and people >= MEMBERS_NEEDED:
                    await self.groups.say(ctx, "ready", people)
            elif group.state == "talking" and await self._talk_over(group):
                await self.groups.finish_talk(ctx)
        return len(due)

    async def _talk_over(self, group: MemberGroupRecord) -> bool:
        async with self.deps.uow(CohortsTx).transaction() as tx:
            parts = await tx.steps.talk_parts(group.cohort_id, group.talk_source)
        return bool(parts) and all(p.status == "done" for p in parts)
