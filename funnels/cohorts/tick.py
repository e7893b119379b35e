"""The scheduler tick: claim a due step run with a lease, commit the claim, and only
then talk to Telegram.

The database is the source of truth for scheduling. A crash leaves a ``running`` run
whose lease expires into ``unknown`` (shown to ops, never re-sent on its own: a
duplicate post in a 500-person group is worse than a late one). A Bot API that cannot
be reached at all (no connection made, so nothing left) puts the run back, due as
before: the next tick tries again, and a run whose script skips it when late is skipped
once past its grace."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from funnels.cohorts.executors import Postponed, StepExecutor
from funnels.cohorts.lifecycle import pause_within, tell_leader_lost
from funnels.cohorts.member_groups import TendMemberGroups
from funnels.cohorts.pauses import PauseReason
from funnels.cohorts.ports import CohortsTx
from funnels.deps import Deps
from funnels.kernel.messaging import BotApiUnreached, ChatUnavailable, DeliveryError
from funnels.kernel.records import CohortRecord, StepRunRecord
from funnels.ladder.reminders import RemindMembers
from funnels.warmup.admissions import AnnounceResponders
from funnels.warmup.envelopes import CloseFullEnvelopes


@dataclass
class TickReport:
    claimed: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    unknown: int = 0
    paused_cohorts: list[int] = field(default_factory=list)
    finished_cohorts: list[int] = field(default_factory=list)
    closed_envelopes: list[int] = field(default_factory=list)
    reminders: int = 0
    """Private reminders sent (see :mod:`funnels.ladder.reminders`)."""
    lateness: list[float] = field(default_factory=list)
    """Seconds each step run started after its due time."""
    stopped: bool = False
    """Told to stop: it claimed nothing more after the step it was running."""
    unreached: bool = False
    """The Bot API could not be reached: the run it tried is due again (nothing was
    sent) and the tick claimed nothing more; the next tick tries again."""
    next_due: datetime | None = None
    """When the next run the tick could claim is due, as planned when the tick ended
    (None: nothing planned, or a full batch, after which the caller claims on)."""


def _held_reason(key: str) -> str:
    return f"waiting for a decision on {key}"


class RunDueSteps:
    """One scheduler tick: expire stale leases, then claim, run and finish due runs one at
    a time (up to ``batch``), then close envelopes left full and open, tend members' own
    groups and send the day's reminders. After a full batch those chores wait for the
    next call (call again while ``claimed`` equals the batch size).

    One claim per step, not a batch under one lease: a process killed mid-tick leaves only
    the run it was sending in doubt, and the steps it had not reached stay pending for the
    next tick. ``stop()`` (graceful shutdown) lets the current step finish and claims
    nothing more, in this tick or any later call.
    """

    def __init__(
        self,
        deps: Deps,
        *,
        owner: str = "tick",
        lease: timedelta = timedelta(minutes=5),
        batch: int = 50,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self.deps = deps
        self.owner = owner
        self.lease = lease
        self.batch = batch
        self.stopping = stopping if stopping is not None else asyncio.Event()
        self.execute = StepExecutor(deps)
        self.remind = RemindMembers(deps)

    def stop(self) -> None:
        """Claim nothing more; a step being sent still finishes and records its outcome."""
        self.stopping.set()

    async def __call__(self) -> TickReport:
        report = TickReport()
        for n in range(self.batch):
            if self.stopping.is_set():
                break
            claimed = await self._claim_next(report, expire=n == 0)
            if claimed is None:
                break
            report.claimed += 1
            status = await self._run(*claimed, report)
            if status == "unreached":  # the rest would fail alike: the next tick tries
                report.unreached = True
                return report
            if status == "done":
                report.done += 1
            elif status == "skipped":
                report.skipped += 1
            elif status == "failed":
                report.failed += 1
        if self.stopping.is_set():
            report.stopped = True
            return report
        if report.claimed >= self.batch:
            # A full batch: more is likely due, and the caller claims on (the service's
            # tick does). The chores run once, after the last batch, not after each.
            return report
        report.closed_envelopes = await CloseFullEnvelopes(self.deps)()
        await AnnounceResponders(self.deps)()
        await TendMemberGroups(self.deps)()
        report.reminders = await self.remind()
        async with self.deps.uow(CohortsTx).transaction() as tx:
            report.finished_cohorts = await tx.cohorts.finish_due(self.deps.clock.now())
            report.next_due = await tx.steps.next_due_at()
            await tx.commit()
        return report

    async def _claim_next(
        self, report: TickReport, *, expire: bool
    ) -> tuple[StepRunRecord, CohortRecord] | None:
        """The oldest claimable due run, leased and committed before anything is sent.
        With ``expire``, runs whose lease ran out first become ``unknown`` (in the same
        transaction: one round trip when nothing is due)."""
        now = self.deps.clock.now()
        uow = self.deps.uow(CohortsTx)
        # The claim is one statement, committed as it runs; the cohort is read after it
        # (a crash between the two leaves the run claimed, as one right after a commit
        # would). Only the expiry, which writes more than one statement, needs a
        # transaction around it.
        async with uow.transaction() if expire else uow.one_statement() as tx:
            if expire:
                expired = await tx.steps.expire_leases(now)
                report.unknown += len(expired)
                for run in expired:
                    await self._hold_later_parts(tx, run)
            claimed = await tx.steps.claim_due(now, self.owner, now + self.lease, 1)
            cohort = await tx.cohorts.get(claimed[0].cohort_id) if claimed else None
            await tx.commit()
        if not claimed:
            return None
        assert cohort is not None  # step runs reference their cohort
        return claimed[0], cohort

    @staticmethod
    async def _hold_later_parts(tx: CohortsTx, run: StepRunRecord) -> None:
        """A talk part in doubt or failed: its later parts wait for a decision rather
        than go on without it (the claim would not take them anyway; ``held`` says why)."""
        if run.kind.is_talk_part:
            await tx.steps.hold_later_parts(
                run.cohort_id, run.source, run.part or 0, _held_reason(run.key)
            )

    async def _run(self, run: StepRunRecord, cohort: CohortRecord, report: TickReport) -> str:
        script = self.deps.scripts.get(cohort)
        now = self.deps.clock.now()
        late = max(now - run.due_at, timedelta(0))
        report.lateness.append(late.total_seconds())
        outcome: dict[str, object] = {"late_seconds": int(late.total_seconds())}
        if run.outcome and "retried_by" in run.outcome:  # who sent it again stays on record
            outcome["retried_by"] = run.outcome["retried_by"]
        if run.kind.speaks:
            policy, grace = script.step(run.source).late_policy()
            if policy == "skip" and late > grace:
                await self._finish(run, "skipped", outcome, f"{late} late, past the grace {grace}")
                return "skipped"
        try:
            outcome.update(await self.execute(run, cohort, script))
        except Postponed as later:
            async with self.deps.uow(CohortsTx).transaction() as tx:
                await tx.steps.postpone(run.id, later.until)
                await tx.commit()
            return "postponed"
        except ChatUnavailable as exc:
            async with self.deps.uow(CohortsTx).transaction() as tx:
                await tx.steps.release_claim(run.id)  # nothing was sent: run it on resume
                # The code, not Telegram's English words: /status says it in the reader's
                # language.
                leader = await pause_within(tx, cohort, PauseReason(exc.cause), now)
                await tx.commit()
            report.paused_cohorts.append(cohort.id)
            await tell_leader_lost(self.deps, leader, cohort, exc.cause)
            return "paused"
        except BotApiUnreached:
            # Nothing left: due as before (its lateness counts on), claimable again.
            report.lateness.pop()
            async with self.deps.uow(CohortsTx).one_statement() as tx:
                await tx.steps.release_claim(run.id)
                await tx.commit()
            return "unreached"
        except DeliveryError as exc:
            status = "failed" if exc.definite else "unknown"
            await self._finish(run, status, outcome, exc.reason)
            if status == "unknown":
                report.unknown += 1
            return status
        await self._finish(run, "done", outcome, None)
        return "done"

    async def _finish(
        self, run: StepRunRecord, status: str, outcome: dict[str, object], error: str | None
    ) -> None:
        holds = status in ("unknown", "failed")
        uow = self.deps.uow(CohortsTx)
        # Done or skipped is one statement; in doubt or failed also holds the later parts.
        async with uow.transaction() if holds else uow.one_statement() as tx:
            await tx.steps.finish(run.id, status, self.deps.clock.now(), outcome, error)  # type: ignore[arg-type]
            if holds:
                await self._hold_later_parts(tx, run)
            await tx.commit()
