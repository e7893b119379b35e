"""``funnelbot stats reconcile``: the rollups recounted from the rows they sum (members'
stage timestamps, their messages per day), compared, and put right where they differ.

The recount and the rollups it is compared with are read in one snapshot, so members who
move meanwhile cannot look like drift; a repair adds the difference found (it never
overwrites), so a move committed after the snapshot is kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from funnels.deps import Deps
from funnels.kernel.rollups import recount
from funnels.kernel.stages import Stage
from funnels.ops.ports import RollupsTx


@dataclass(frozen=True, slots=True)
class Drift:
    """How far one cohort's rollups were from the recount (recount minus rollup)."""

    cohort_id: int
    funnel: dict[tuple[date, Stage], int]
    activity: dict[date, tuple[int, int]]
    """Local day -> (messages, members who wrote)."""

    @property
    def rows(self) -> int:
        return len(self.funnel) + len(self.activity)


@dataclass(frozen=True, slots=True)
class Reconciled:
    cohorts: int
    drifts: list[Drift]
    repaired: bool


class ReconcileRollups:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, *, repair: bool, progress: Callable[[int, int], None] | None = None
    ) -> Reconciled:
        async with self.deps.uow(RollupsTx).snapshot() as tx:
            ids = await tx.rollups.cohort_ids()
        drifts = []
        for done, cohort_id in enumerate(ids, 1):
            drift = await self._check(cohort_id)
            if drift is not None:
                drifts.append(drift)
                if repair:
                    async with self.deps.uow(RollupsTx).transaction() as tx:
                        await tx.rollups.correct(cohort_id, drift.funnel, drift.activity)
                        await tx.commit()
            if progress is not None:
                progress(done, len(ids))
        return Reconciled(len(ids), drifts, repair)

    async def _check(self, cohort_id: int) -> Drift | None:
        async with self.deps.uow(RollupsTx).snapshot() as tx:
            zone = await tx.rollups.zone(cohort_id)
            counted = recount([t async for t in tx.rollups.member_times(cohort_id)], zone)
            kept = await tx.rollups.funnel(cohort_id)
            activity_counted = await tx.rollups.activity_recount(cohort_id)
            activity_kept = await tx.rollups.activity(cohort_id)
        funnel = Counter(counted)
        funnel.subtract(kept)
        funnel_drift = {k: n for k, n in funnel.items() if n}
        activity_drift = {}
        for day in set(activity_counted) | set(activity_kept):
            m1, w1 = activity_counted.get(day, (0, 0))
            m0, w0 = activity_kept.get(day, (0, 0))
            if (m1, w1) != (m0, w0):
                activity_drift[day] = (m1 - m0, w1 - w0)
        if not funnel_drift and not activity_drift:
            return None
        return Drift(cohort_id, funnel_drift, activity_drift)
