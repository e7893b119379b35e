"""What ops do to a cohort over the HTTP API: pause it and resume it (retrying or
skipping a step and raising the budget are use cases the command line shares, given
their author). Each action is written, with who asked and when, in the action's own
transaction (:mod:`funnels.kernel.actions`)."""

from __future__ import annotations

from dataclasses import replace

from funnels.cohorts.pauses import PauseReason
from funnels.deps import Deps
from funnels.kernel.actions import log_action
from funnels.kernel.actor import OpsAuthor
from funnels.kernel.messaging import WARMUP_RIGHTS
from funnels.kernel.records import CohortRecord, OpsActionRecord
from funnels.kernel.refusals import Refused
from funnels.ops.ports import OpsTx


async def _cohort(tx: OpsTx, cohort_id: int) -> CohortRecord:
    cohort = await tx.cohorts.get(cohort_id)
    if cohort is None:
        raise Refused("no_cohort", id=cohort_id)
    return cohort


class PauseByOps:
    """Pause a running cohort: no step runs until it is resumed (missed steps then follow
    their late policy), as a leader's /pause does."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, cohort_id: int, author: OpsAuthor) -> CohortRecord:
        now = self.deps.clock.now()
        async with self.deps.uow(OpsTx).transaction() as tx:
            cohort = await _cohort(tx, cohort_id)
            if cohort.status != "running":
                raise Refused("not_running", code=cohort.code, status=cohort.status)
            reason = PauseReason("paused_by_ops").stored()
            await tx.cohorts.set_status(cohort.id, "paused", reason, now)
            await log_action(tx.ops_actions, cohort.id, author, "pause", None, now)
            await tx.commit()
        return replace(cohort, status="paused", status_reason=reason)


class ResumeByOps:
    """Run a paused cohort again, once the bot has what it needs in its warm-up group."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, cohort_id: int, author: OpsAuthor) -> CohortRecord:
        async with self.deps.uow(OpsTx).transaction() as tx:
            cohort = await _cohort(tx, cohort_id)
        if cohort.status != "paused":
            raise Refused("not_paused", code=cohort.code, status=cohort.status)
        if cohort.warmup_chat_id is not None:
            missing = await self.deps.messenger.missing_rights(cohort.warmup_chat_id, WARMUP_RIGHTS)
            if missing:
                raise Refused("still_missing", code=cohort.code, missing=tuple(missing))
        now = self.deps.clock.now()
        async with self.deps.uow(OpsTx).transaction() as tx:
            cohort = await _cohort(tx, cohort_id)
            if cohort.status != "paused":  # resumed meanwhile, by someone else
                raise Refused("not_paused", code=cohort.code, status=cohort.status)
            detail = cohort.status_reason and f"was: {cohort.status_reason}"[:256]
            await tx.cohorts.set_status(cohort.id, "running", None, now)
            await log_action(tx.ops_actions, cohort.id, author, "resume", detail or None, now)
            await tx.commit()
        return replace(cohort, status="running", status_reason=None)


class CohortActions:
    """What ops did to a cohort, oldest first; None when there is no such cohort."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, cohort_id: int) -> list[OpsActionRecord] | None:
        async with self.deps.uow(OpsTx).transaction() as tx:
            if await tx.cohorts.get(cohort_id) is None:
                return None
            return await tx.ops_actions.for_cohort(cohort_id)
