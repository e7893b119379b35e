"""What a member sees of the ladder: ``/tasks`` (with a how-to per open task) and
``/balance``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.records import CohortRecord, MemberRef, TaskProgressRecord
from funnels.kernel.refusals import Refused
from funnels.ladder.goals import LeafProgress, describe_progress
from funnels.ladder.ports import FindsTaskGroup, LadderTx
from funnels.scripts.model import Task


class Balance:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, member: Actor) -> dict[str, int]:
        async with self.deps.uow(LadderTx).transaction() as tx:
            user = await tx.users.by_telegram(member.telegram_id)
            return await tx.ledger.balance(user.user_id) if user else {}


@dataclass(frozen=True, slots=True)
class TaskLine:
    task_id: str
    title: str
    state: Literal["done", "open", "locked"]
    unlocks_at: datetime
    progress: list[LeafProgress]
    """Per goal leaf: counts, or money in minor units of the cohort's currency."""
    index: int = 0
    """The task's place in the ladder (what a how-to button names)."""
    proof: bool = False
    """Done by sending a screenshot to the bot."""


@dataclass(frozen=True, slots=True)
class TaskLadder:
    cohort_code: str
    timezone: str
    currency: str
    lines: list[TaskLine]
    cohort_id: int = 0
    ended: bool = False
    """The cohort is over: nothing is open to work on any more."""


TaskState = Literal["done", "open", "locked"]


def task_state(row: TaskProgressRecord | None, unlocks_at: datetime, now: datetime) -> TaskState:
    """Done once completed; open from its unlock time; locked before."""
    if row is not None and row.completed_at is not None:
        return "done"
    return "open" if unlocks_at <= now else "locked"


def open_tasks(
    deps: Deps, cohort: CohortRecord, progress: Mapping[str, TaskProgressRecord]
) -> list[tuple[int, Task]]:
    """(ladder index, task) of the tasks a member can work on now, in ladder order;
    none once the cohort has ended."""
    now = deps.clock.now()
    if now >= cohort.ends_at:
        return []
    unlocks = deps.scripts.unlock_times(cohort)
    return [
        (i, task)
        for i, task in enumerate(deps.scripts.get(cohort).tasks.ladder)
        if task_state(progress.get(task.id), unlocks[task.id], now) == "open"
    ]


async def task_group_of(tx: FindsTaskGroup, member: Actor) -> tuple[MemberRef, CohortRecord] | None:
    """The member as the bot knows them and the cohort in whose task stage they are;
    None when they are unknown or in no task group."""
    user = await tx.users.by_telegram(member.telegram_id)
    cohort_id = await tx.members.current_cohort(user.user_id) if user else None
    cohort = await tx.cohorts.get(cohort_id) if cohort_id else None
    return (user, cohort) if user is not None and cohort is not None else None


class MyTasks:
    """``/tasks``: the member's ladder in their current task group."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, member: Actor) -> TaskLadder | None:
        async with self.deps.uow(LadderTx).transaction() as tx:
            found = await task_group_of(tx, member)
            if found is None:
                return None
            user, cohort = found
            progress = await tx.tasks.for_member(cohort.id, user.user_id)
        script = self.deps.scripts.get(cohort)
        unlocks = self.deps.scripts.unlock_times(cohort)
        now = self.deps.clock.now()
        lines = []
        for index, task in enumerate(script.tasks.ladder):
            row = progress.get(task.id)
            lines.append(
                TaskLine(
                    task.id,
                    task.title,
                    task_state(row, unlocks[task.id], now),
                    unlocks[task.id],
                    describe_progress(task.goal, row.progress if row else {}, cohort.currency),
                    index,
                    task.proof,
                )
            )
        return TaskLadder(
            cohort.code, cohort.timezone, cohort.currency, lines, cohort.id, now >= cohort.ends_at
        )


TaskLinkFor = Callable[[CohortRecord, MemberRef, str], Awaitable[str | None]]
"""The hook for a member's tracked link for a task (cohort, member, task id): the link
the how-to shows, or None when the task has none. The links slice provides it; without
it a how-to shows no link."""


@dataclass(frozen=True, slots=True)
class TaskGuide:
    """What the how-to button of an open task shows."""

    task_id: str
    title: str
    how: str
    proof: bool
    link: str | None


class TaskHowTo:
    """A how-to button under ``/tasks`` pressed: the task's how-to (and link), only for a
    task of the member's current cohort that is open now.

    Refuses ``task_done`` (completed since the list was sent) and ``button_stale`` (a
    button from another cohort's list, a task not open, or one that never existed)."""

    def __init__(self, deps: Deps, *, task_link: TaskLinkFor | None = None) -> None:
        self.deps = deps
        self.task_link = task_link

    async def __call__(self, member: Actor, cohort_id: int, index: int) -> TaskGuide:
        async with self.deps.uow(LadderTx).transaction() as tx:
            found = await task_group_of(tx, member)
            if found is None or found[1].id != cohort_id:
                raise Refused("button_stale")
            user, cohort = found
            progress = await tx.tasks.for_member(cohort.id, user.user_id)
        ladder = self.deps.scripts.get(cohort).tasks.ladder
        if not 0 <= index < len(ladder):
            raise Refused("button_stale")
        task = ladder[index]
        if (index, task) not in open_tasks(self.deps, cohort, progress):
            row = progress.get(task.id)
            raise Refused("task_done" if row and row.completed_at else "button_stale")
        link = await self.task_link(cohort, user, task.id) if self.task_link else None
        return TaskGuide(task.id, task.title, task.how, task.proof, link)
