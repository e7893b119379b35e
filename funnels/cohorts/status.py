"""``/status``: where a cohort stands."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from funnels.cohorts.lifecycle import leaders_cohort
from funnels.cohorts.ports import CohortsTx
from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.records import CohortRecord, StepRunRecord
from funnels.kernel.stages import Stage


@dataclass(frozen=True, slots=True)
class StatusView:
    cohort: CohortRecord
    day: int
    days: int
    counts: dict[Stage, int]
    next_step: StepRunRecord | None
    attention: list[StepRunRecord]
    parent: CohortRecord | None = None
    """The cohort this line grew out of (a supervisor's line); None for a leader's own."""


class CohortStatus:
    """``/status``: where the cohort stands, what runs next, what needs a look."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, *, chat_id: int, actor: Actor, is_admin: bool) -> StatusView:
        cohort = await leaders_cohort(self.deps, chat_id, actor, is_admin)
        script = self.deps.scripts.get(cohort)
        today = self.deps.clock.now().astimezone(ZoneInfo(cohort.timezone)).date()
        day = (today - cohort.start_date).days + 1
        async with self.deps.uow(CohortsTx).transaction() as tx:
            counts = await tx.members.stage_counts(cohort.id)
            next_step = await tx.steps.next_pending(cohort.id)
            attention = await tx.steps.attention(cohort.id)
            parent = (
                await tx.cohorts.get(cohort.parent_cohort_id) if cohort.parent_cohort_id else None
            )
        return StatusView(
            cohort,
            max(0, min(day, script.total_days)),
            script.total_days,
            counts,
            next_step,
            attention,
            parent,
        )


class CohortOfChat:
    """The cohort a group belongs to (warm-up or task group), if any."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, chat_id: int) -> CohortRecord | None:
        async with self.deps.uow(CohortsTx).transaction() as tx:
            return await tx.cohorts.by_chat(chat_id)
