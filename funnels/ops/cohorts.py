"""Cohorts as ops list them: chosen by code, region, leader, status and start date,
newest first, a page at a time; one cohort's step timeline, red envelopes and tasks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from funnels.deps import Deps
from funnels.kernel.money import to_minor
from funnels.kernel.records import StepRunRecord
from funnels.kernel.stages import Stage
from funnels.ops.ports import CohortFilter, CohortSummary, EnvelopeLine, ReportsTx

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class CohortPage:
    items: list[CohortSummary]
    next_before_id: int | None
    """Where the next page starts (ids below this one); None on the last page."""


class ListCohorts:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, choice: CohortFilter, before_id: int | None = None, limit: int = 50
    ) -> CohortPage:
        limit = max(1, min(limit, MAX_PAGE))
        async with self.deps.uow(ReportsTx).transaction() as tx:
            rows = await tx.reports.cohort_page(choice, before_id, limit + 1)
        more = len(rows) > limit
        items = rows[:limit]
        return CohortPage(items, items[-1].id if more else None)


class CohortDetails:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, cohort_id: int) -> CohortSummary | None:
        async with self.deps.uow(ReportsTx).transaction() as tx:
            return await tx.reports.cohort_summary(cohort_id)


@dataclass(frozen=True, slots=True)
class StepLine:
    """One step run as the timeline shows it."""

    key: str
    kind: str
    stage: str
    day: int
    part: int | None
    due_at: datetime
    status: str
    attempts: int
    started_at: datetime | None
    late_seconds: int | None
    """How long after its due time the run started (never negative); None until then."""
    outcome: Mapping[str, object] | None
    error: str | None

    @classmethod
    def of(cls, run: StepRunRecord) -> StepLine:
        late = None
        if run.started_at is not None:
            late = max(0, int((run.started_at - run.due_at).total_seconds()))
        return cls(
            run.key,
            run.kind.value,
            run.stage.value,
            run.day,
            run.part,
            run.due_at,
            run.status,
            run.attempts,
            run.started_at,
            late,
            run.outcome,
            run.error,
        )


class CohortSteps:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, cohort_id: int, status: str | None = None) -> list[StepLine] | None:
        """The cohort's step runs by due time (only those in ``status`` if given); None
        when there is no such cohort."""
        async with self.deps.uow(ReportsTx).transaction() as tx:
            if await tx.reports.cohort_summary(cohort_id) is None:
                return None
            runs = await tx.steps.timeline(cohort_id)
        return [StepLine.of(r) for r in runs if status is None or r.status == status]


@dataclass(frozen=True, slots=True)
class EnvelopeFigures:
    """A red envelope with what ops read from it: the share of it grabbed, and how long
    the group took to empty it."""

    line: EnvelopeLine
    grab_rate: float
    """Shares claimed over shares offered (0 to 1)."""
    emptied_in_seconds: int | None
    """From opening to the last share claimed, once every share was; else None."""


class CohortEnvelopes:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, cohort_id: int) -> list[EnvelopeFigures] | None:
        """The cohort's red envelopes by opening time; None when there is no such cohort."""
        async with self.deps.uow(ReportsTx).transaction() as tx:
            if await tx.reports.cohort_summary(cohort_id) is None:
                return None
            lines = await tx.reports.envelope_lines(cohort_id)
        out = []
        for line in lines:
            emptied = None
            if line.shares and line.claimed >= line.shares and line.last_claim_at is not None:
                emptied = max(0, int((line.last_claim_at - line.opened_at).total_seconds()))
            rate = line.claimed / line.shares if line.shares else 0.0
            out.append(EnvelopeFigures(line, rate, emptied))
        return out


PAYOUT_STATES = ("delivered", "pending", "owed", "parked")


@dataclass(frozen=True, slots=True)
class TaskFigures:
    """A task of the cohort's ladder: when it unlocks, who took it up and finished it,
    and what its rewards came to, by way out."""

    task_id: str
    title: str
    unlocks_at: datetime
    reward_minor: int | None
    started: int
    """Members with any progress on it."""
    completed: int
    admitted: int
    """Members who reached the task group (``admitted`` or further): the base of the rate."""
    payouts: dict[str, tuple[int, int]]
    """(how many, sum in minor units) by way out, every state present."""

    @property
    def completion_rate(self) -> float | None:
        return self.completed / self.admitted if self.admitted else None


class CohortTasks:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, cohort_id: int) -> list[TaskFigures] | None:
        """The ladder's tasks in script order; None when there is no such cohort."""
        async with self.deps.uow(ReportsTx).transaction() as tx:
            cohort = await tx.cohorts.get(cohort_id)
            if cohort is None:
                return None
            counts = await tx.reports.task_counts(cohort_id)
            payouts = await tx.reports.task_payouts(cohort_id)
            stages = await tx.reports.stage_counts([cohort_id])
        admitted = sum(n for stage, n in stages.items() if stage >= Stage.ADMITTED)
        script = self.deps.scripts.get(cohort)
        unlocks = self.deps.scripts.unlock_times(cohort)
        out = []
        for task in script.tasks.ladder:
            started, completed = counts.get(task.id, (0, 0))
            reward = task.reward.amount if task.reward else None
            out.append(
                TaskFigures(
                    task.id,
                    task.title,
                    unlocks[task.id],
                    to_minor(reward, cohort.currency) if reward is not None else None,
                    started,
                    completed,
                    admitted,
                    {s: payouts.get((task.id, s), (0, 0)) for s in PAYOUT_STATES},
                )
            )
        return out
