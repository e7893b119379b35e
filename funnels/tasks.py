"""The 21-day ladder: platform events move task progress; a finished task rewards at once.

``IngestEvents`` stores a batch of events first (unique on source + event id, so a
re-sent event is acknowledged and never counted twice), then applies each new event to
the member's unlocked, unfinished tasks in the same transaction. A reward is a ledger
entry keyed by cohort, member and task, paid only while the cohort budget allows;
promotions only ever move a member up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from funnels.cohorts import Deps
from funnels.goals import contributions, evaluate
from funnels.money import to_minor
from funnels.ports import (
    CohortRecord,
    IncomingEvent,
    MemberRef,
    RewardNotice,
    Transaction,
)
from funnels.script import Task
from funnels.stages import ROLE_FOR_PROMOTION, STAGE_FOR_PROMOTION, Stage


@dataclass(frozen=True, slots=True)
class Completion:
    cohort_id: int
    member: MemberRef
    task_id: str
    reward_minor: int
    reward_status: str  # "paid", "over_budget" or "none"
    promoted_to: str | None


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    unmatched: int = 0
    completions: list[Completion] = field(default_factory=list)


@dataclass
class _Progress:
    id: int
    values: dict[int, int]
    completed_at: datetime | None
    dirty: bool = False


@dataclass
class _Batch:
    """What one batch has loaded and changed; written back once at the end."""

    members: dict[tuple[str | None, int | None], MemberRef | None] = field(default_factory=dict)
    cohort_of: dict[int, int | None] = field(default_factory=dict)
    cohorts: dict[int, CohortRecord] = field(default_factory=dict)
    progress: dict[tuple[int, int, str], _Progress] = field(default_factory=dict)
    uniques: dict[tuple[int, int], set[str]] = field(default_factory=dict)
    new_uniques: list[tuple[int, int, str]] = field(default_factory=list)


class IngestEvents:
    """Store and apply platform events; answer with what was new and what it finished."""

    def __init__(self, deps: Deps, *, notify: bool = True) -> None:
        self.deps = deps
        self.notify = notify

    async def __call__(self, source: str, events: Sequence[IncomingEvent]) -> IngestResult:
        result = IngestResult()
        now = self.deps.clock.now()
        async with self.deps.store.transaction() as tx:
            new_rows = await tx.events.store(source, events, now)
            result.accepted = len(new_rows)
            result.duplicates = len(events) - len(new_rows)
            batch = _Batch()
            handled: list[tuple[int, int | None, int | None, str]] = []
            fresh: list[tuple[int, IncomingEvent, MemberRef | None]] = []
            for event in events:
                row_id = new_rows.pop(event.event_id, None)
                if row_id is None:  # a duplicate, here or in an earlier batch
                    continue
                key = (event.member_ref, event.telegram_user_id)
                if key not in batch.members:
                    batch.members[key] = await _resolve(tx, event)
                fresh.append((row_id, event, batch.members[key]))
            # Member by member in id order (each member's events keep their order): two
            # batches about the same members lock their progress rows in the same order
            # and so cannot deadlock each other on PostgreSQL.
            fresh.sort(key=lambda item: item[2].user_id if item[2] else -1)
            for row_id, event, member in fresh:
                if member is None:
                    result.unmatched += 1
                    handled.append((row_id, None, None, "unknown_member"))
                    continue
                cohort_id, outcome = await self._apply(tx, batch, member, event, result, now)
                handled.append((row_id, member.user_id, cohort_id, outcome))
            for row in batch.progress.values():
                if row.dirty:
                    await tx.tasks.save(row.id, row.values, row.completed_at, now)
            await tx.tasks.add_unique_many(batch.new_uniques)
            await tx.events.mark_handled(handled, now)
            await tx.commit()
        if self.notify:
            for done in result.completions:
                if done.reward_status == "paid" or done.promoted_to:
                    await self._notify(done)
        return result

    async def _apply(
        self,
        tx: Transaction,
        batch: _Batch,
        member: MemberRef,
        event: IncomingEvent,
        result: IngestResult,
        now: datetime,
    ) -> tuple[int | None, str]:
        if member.user_id not in batch.cohort_of:
            batch.cohort_of[member.user_id] = await tx.members.current_cohort(member.user_id)
        cohort_id = batch.cohort_of[member.user_id]
        if cohort_id is None:
            return None, "no_task_stage"
        cohort = batch.cohorts.get(cohort_id)
        if cohort is None:
            found = await tx.cohorts.get(cohort_id)
            assert found is not None
            cohort = batch.cohorts[cohort_id] = found
        if event.type == "order.paid":
            await tx.members.advance(cohort_id, member.user_id, Stage.SOLD, event.occurred_at)
        if event.occurred_at > cohort.ends_at:
            return cohort_id, "after_cohort_end"
        unlocks = self.deps.scripts.unlock_times(cohort)
        candidates = [
            t
            for t in self.deps.scripts.tasks_for_event(cohort, event.type)
            if event.occurred_at >= unlocks[t.id]
        ]
        if not candidates:
            return cohort_id, "no_task"
        missing = [
            t.id for t in candidates if (cohort_id, member.user_id, t.id) not in batch.progress
        ]
        if missing:
            for task_id, rec in (
                await tx.tasks.progress_for(cohort_id, member.user_id, missing, now)
            ).items():
                batch.progress[(cohort_id, member.user_id, task_id)] = _Progress(
                    rec.id, dict(rec.progress), rec.completed_at
                )
        counted = False
        for task in candidates:
            row = batch.progress[(cohort_id, member.user_id, task.id)]
            if row.completed_at is not None:
                continue
            changed = False
            for c in contributions(task.goal, event.type, event.data):
                if c.unique_key is not None:
                    seen = batch.uniques.get((row.id, c.leaf))
                    if seen is None:
                        seen = await tx.tasks.unique_values(row.id, c.leaf)
                        batch.uniques[(row.id, c.leaf)] = seen
                    value = c.unique_key[:128]
                    if value in seen:
                        continue
                    seen.add(value)
                    batch.new_uniques.append((row.id, c.leaf, value))
                row.values[c.leaf] = row.values.get(c.leaf, 0) + c.amount
                changed = True
            if not changed:
                continue
            counted = row.dirty = True
            if evaluate(task.goal, row.values, cohort.currency).done:
                row.completed_at = event.occurred_at
                result.completions.append(
                    await self._complete(tx, cohort, member, task, row.id, event.occurred_at, now)
                )
        return cohort_id, "counted" if counted else "no_progress"

    async def _complete(
        self,
        tx: Transaction,
        cohort: CohortRecord,
        member: MemberRef,
        task: Task,
        progress_id: int,
        reached_at: datetime,
        now: datetime,
    ) -> Completion:
        await tx.members.advance(cohort.id, member.user_id, Stage.TASKED, reached_at)
        amount = to_minor(task.reward.amount, cohort.currency) if task.reward else 0
        status = "none"
        if amount:
            key = f"reward:{cohort.id}:{member.user_id}:{task.id}"
            if await tx.cohorts.reserve(cohort.id, amount):
                if await tx.ledger.credit(
                    key,
                    member.user_id,
                    cohort.id,
                    "reward",
                    task.id,
                    amount,
                    cohort.currency,
                    now,
                ):
                    status = "paid"
                else:  # already paid under this key: give the reservation back
                    await tx.cohorts.release(cohort.id, amount)
                    status = "duplicate"
            else:
                status = "over_budget"
            await tx.tasks.set_reward_status(progress_id, status)
        if task.promote:
            await tx.members.advance(
                cohort.id, member.user_id, STAGE_FOR_PROMOTION[task.promote], reached_at
            )
            await tx.members.set_role_at_least(
                member.user_id, int(ROLE_FOR_PROMOTION[task.promote])
            )
        return Completion(cohort.id, member, task.id, amount, status, task.promote)

    async def _notify(self, done: Completion) -> None:
        async with self.deps.store.transaction() as tx:
            cohort = await tx.cohorts.get(done.cohort_id)
        if cohort is None:
            return
        task = self.deps.scripts.get(cohort).task(done.task_id)
        await self.deps.messenger.notify(
            done.member,
            RewardNotice(
                task.id,
                task.title,
                done.reward_minor if done.reward_status == "paid" else 0,
                cohort.currency,
                done.promoted_to,
                done.member.language or cohort.locale,
            ),
        )


async def _resolve(tx: Transaction, event: IncomingEvent) -> MemberRef | None:
    if event.member_ref is not None:
        return await tx.members.by_ref(event.member_ref)
    if event.telegram_user_id is not None:
        return await tx.members.by_telegram(event.telegram_user_id)
    return None
