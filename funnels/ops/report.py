"""The funnel report over a set of cohorts: members by stage, envelope and reward spend
against the budget, and how late the steps ran (``funnelbot simulate`` prints it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from funnels.deps import Deps
from funnels.kernel.stages import Stage
from funnels.ops.ports import ReportsTx


@dataclass
class FunnelReport:
    cohorts: int
    stages: dict[str, int]
    """Members who reached each stage or went further (the funnel's fixed definition)."""
    left: int
    currency: str
    budget_minor: int
    envelope_planned_minor: int
    envelope_claimed_minor: int
    envelope_claims: int
    envelopes: int
    rewards_paid_minor: int
    rewards_paid: int
    payouts: dict[str, tuple[int, int]]
    """Task rewards by way out: ``owed`` (past the budget), ``pending``, ``delivered``,
    ``parked``; (how many, sum in minor units)."""
    tasks_completed: dict[str, int]
    step_status: dict[str, int]
    lateness_seconds: list[int] = field(default_factory=list)
    """How late each started step run started, in seconds (never negative), ascending."""

    def payout(self, status: str) -> tuple[int, int]:
        """(how many, sum in minor units) of the rewards in ``status``."""
        return self.payouts.get(status, (0, 0))

    def conversions(self) -> list[tuple[str, int, float | None]]:
        """(stage, count, share of the previous stage) in funnel order."""
        out: list[tuple[str, int, float | None]] = []
        previous: int | None = None
        for stage in Stage:
            count = self.stages.get(stage.label, 0)
            out.append((stage.label, count, (count / previous) if previous else None))
            previous = count
        return out


def reached(at_stage: dict[Stage, int]) -> dict[str, int]:
    """Members at each stage -> members who reached each stage or went further."""
    stages: dict[str, int] = {}
    running = 0
    for stage in reversed(Stage):
        running += at_stage.get(stage, 0)
        stages[stage.label] = running
    return dict(reversed(stages.items()))


class ReadFunnel:
    """The funnel report of some cohorts, read in one unit of work (a consistent view)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, cohort_ids: Sequence[int]) -> FunnelReport:
        ids = list(cohort_ids)
        async with self.deps.uow(ReportsTx).transaction() as tx:
            figures = tx.reports
            at_stage = await figures.stage_counts(ids)
            left = await figures.members_left(ids)
            budget = await figures.budget(ids)
            envelopes = await figures.envelopes(ids)
            rewards = await figures.rewards(ids)
            payouts = await figures.payouts(ids)
            completed = await figures.tasks_completed(ids)
            status = await figures.step_status(ids)
            starts = await figures.step_starts(ids)
        return FunnelReport(
            cohorts=len(ids),
            stages=reached(at_stage),
            left=left,
            currency=budget.currency or "",
            budget_minor=budget.total_minor,
            envelopes=envelopes.opened,
            envelope_planned_minor=envelopes.planned_minor,
            envelope_claimed_minor=envelopes.claimed_minor,
            envelope_claims=envelopes.claims,
            rewards_paid=rewards.paid,
            rewards_paid_minor=rewards.paid_minor,
            payouts=payouts,
            tasks_completed=completed,
            step_status=status,
            lateness_seconds=sorted(
                max(0, int((started - due).total_seconds())) for due, started in starts
            ),
        )
