"""What a member sees of the ladder: ``/tasks`` and ``/balance``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.ladder.goals import LeafProgress, describe_progress
from funnels.ladder.ports import LadderTx


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


@dataclass(frozen=True, slots=True)
class TaskLadder:
    cohort_code: str
    timezone: str
    currency: str
    lines: list[TaskLine]


class MyTasks:
    """``/tasks``: the member's ladder in their current task group."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, member: Actor) -> TaskLadder | None:
        async with self.deps.uow(LadderTx).transaction() as tx:
            user = await tx.users.by_telegram(member.telegram_id)
            cohort_id = await tx.members.current_cohort(user.user_id) if user else None
            cohort = await tx.cohorts.get(cohort_id) if cohort_id else None
            if user is None or cohort is None:
                return None
            progress = await tx.tasks.for_member(cohort.id, user.user_id)
        script = self.deps.scripts.get(cohort)
        unlocks = self.deps.scripts.unlock_times(cohort)
        now = self.deps.clock.now()
        lines = []
        for task in script.tasks.ladder:
            row = progress.get(task.id)
            state: Literal["done", "open", "locked"] = (
                "done"
                if row is not None and row.completed_at is not None
                else "open"
                if unlocks[task.id] <= now
                else "locked"
            )
            lines.append(
                TaskLine(
                    task.id,
                    task.title,
                    state,
                    unlocks[task.id],
                    describe_progress(task.goal, row.progress if row else {}, cohort.currency),
                )
            )
        return TaskLadder(cohort.code, cohort.timezone, cohort.currency, lines)
