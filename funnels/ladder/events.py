"""The 21-day ladder: events move task progress; a finished task rewards at once.

Events are stored first (:class:`StoreEvents`: unique on source + event id, so a re-sent
event is acknowledged and never counted twice), then applied from the table and marked
handled in one transaction (:class:`ApplyEvents`), so a crash between the two loses
nothing: the tick applies what is pending (:class:`CatchUpEvents`). An event for a
member who is not known yet, or not in a task group yet, waits for them. A reward is a
ledger entry keyed by cohort, member and task, paid only while the cohort budget allows;
promotions only ever move a member up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from funnels.deps import Deps
from funnels.kernel.messaging import RewardNotice
from funnels.kernel.records import CohortRecord, IncomingEvent, MemberRef
from funnels.kernel.stages import ROLE_FOR_PROMOTION, STAGE_FOR_PROMOTION, Stage
from funnels.ladder.goals import contributions, evaluate
from funnels.ladder.ports import LadderTx
from funnels.ladder.rewards import Earned, Grant, grant_rewards
from funnels.scripts.model import Task


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
    applied: int = 0
    unmatched: int = 0
    """Events whose member is unknown: they wait for them (so do events for a member who
    is not in a task group yet, outcome ``no_task_stage``)."""
    completions: list[Completion] = field(default_factory=list)
    deferred: int = 0
    """Events claimed and left pending: their member's events were being applied by
    another transaction (another process's applier); they are applied once it ends."""
    notices: list[tuple[MemberRef, RewardNotice]] = field(default_factory=list)
    """What to tell members of the rewards paid and promotions made (after the commit);
    already sent when the applier was made with ``notify=True``."""


@dataclass
class _Progress:
    id: int
    values: dict[int, int]
    completed_at: datetime | None
    dirty: bool = False


@dataclass
class _Batch:
    """What one batch needs, loaded up front in a few queries, and what it changed;
    written back once at the end."""

    cohort_of: dict[int, int] = field(default_factory=dict)
    cohorts: dict[int, CohortRecord] = field(default_factory=dict)
    progress: dict[tuple[int, int, str], _Progress] = field(default_factory=dict)
    uniques: dict[tuple[int, int], set[str]] = field(default_factory=dict)
    new_uniques: list[tuple[int, int, str]] = field(default_factory=list)
    tasked: dict[tuple[int, int], datetime] = field(default_factory=dict)
    """(cohort, member) -> when they first finished a task in this batch."""
    earned: list[tuple[Earned, _Progress]] = field(default_factory=list)
    """Finished tasks, in order, their rewards granted at the end of the batch."""


@dataclass(frozen=True, slots=True)
class Stored:
    """One request's events after storing: which rows are new, how many were repeats."""

    rows: list[int]
    duplicates: int

    @property
    def accepted(self) -> int:
        return len(self.rows)


class StoreEvents:
    """Store events as they came (pending, unique on source + event id), nothing else:
    once this commits they may be acknowledged, and are applied from the table.

    Takes several requests' events at once (one transaction for all: group commit); an
    event id repeated within or across them is new for the first that brings it only.
    """

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, source: str, requests: Sequence[Sequence[IncomingEvent]]
    ) -> list[Stored]:
        now = self.deps.clock.now()
        # One INSERT … ON CONFLICT DO NOTHING: atomic by itself.
        async with self.deps.uow(LadderTx).one_statement() as tx:
            new_rows = await tx.events.store(source, [e for r in requests for e in r], now)
            await tx.commit()
        out = []
        for events in requests:
            rows = []
            for e in events:
                row = new_rows.pop(e.event_id, None)
                if row is not None:
                    rows.append(row)
            out.append(Stored(rows, len(events) - len(rows)))
        return out


def _lock_order(member: MemberRef | None, cohort_of: Mapping[int, int]) -> tuple[int, int]:
    if member is None:
        return (-1, -1)
    return (cohort_of.get(member.user_id, -1), member.user_id)


class ApplyEvents:
    """Apply stored events to the ladder, oldest first, and mark them handled, in one
    transaction: an event is applied once however often this runs (by the HTTP intake,
    the tick, a start-up after a crash, or several processes at once).

    Each event moves the progress of its member's unlocked, unfinished tasks; a finished
    task rewards at once. An event whose member is unknown, or not in a task group yet,
    waits for them (:class:`CatchUpEvents`)."""

    def __init__(self, deps: Deps, *, notify: bool = True) -> None:
        """With ``notify=False`` the caller sends :attr:`IngestResult.notices` itself
        (the service's applier does, beside its next batches)."""
        self.deps = deps
        self.notify = notify

    async def __call__(
        self,
        ids: Sequence[int] | None = None,
        limit: int = 500,
        received_before: datetime | None = None,
        *,
        least: int | None = None,
    ) -> IngestResult:
        """Up to ``limit`` pending events (received before ``received_before``, if
        given), or with ``ids`` those of them not yet applied. Pending events of members
        another transaction is applying are left pending (``deferred``); with ``ids``,
        this waits for that transaction instead. With ``least``, the end of the queue is
        shared with the other appliers (``Events.claim``)."""
        result = IngestResult()
        now = self.deps.clock.now()
        async with self.deps.uow(LadderTx).transaction() as tx:
            fresh = await tx.events.claim(ids, limit, received_before, least=least)
            if not fresh:
                return result
            by_ref, by_tg = await tx.users.resolve_many(
                [e.member_ref for _, e in fresh if e.member_ref is not None],
                [e.telegram_user_id for _, e in fresh if e.telegram_user_id is not None],
            )
            resolved = [(row_id, e, _member(e, by_ref, by_tg)) for row_id, e in fresh]
            if ids is None:
                # From the queue: a member whose events another applier has in hand now
                # (their next events came in its batch and in this one) is left for the
                # next batch, rather than this one waiting for that whole transaction.
                users = {m.user_id for _, _, m in resolved if m is not None}
                held = await tx.events.hold_members(sorted(users))
                if len(held) < len(users):
                    kept = [r for r in resolved if r[2] is None or r[2].user_id in held]
                    result.deferred = len(resolved) - len(kept)
                    resolved = kept
            result.applied = len(resolved)
            if not resolved:
                return result
            batch = await self._load(tx, resolved, now)
            # Cohort by cohort, member by member in id order (each member's events keep
            # their order): rewards lock their cohort's budget row, and transactions in
            # other processes that lock cohorts in the same order never wait in a cycle.
            resolved.sort(key=lambda item: _lock_order(item[2], batch.cohort_of))
            handled: list[tuple[int, int | None, int | None, str]] = []
            for row_id, event, member in resolved:
                if member is None:
                    result.unmatched += 1
                    handled.append((row_id, None, None, "unknown_member"))
                    continue
                cohort_id, outcome = await self._apply(tx, batch, member, event)
                handled.append((row_id, member.user_id, cohort_id, outcome))
            await self._advance(tx, batch)
            await tx.tasks.save_many(
                [(r.id, r.values, r.completed_at) for r in batch.progress.values() if r.dirty],
                now,
            )
            await tx.tasks.add_unique_many(batch.new_uniques)
            await tx.events.mark_handled(handled, now)

            async def rewarded(grants: list[Grant]) -> None:
                await tx.tasks.rewarded_many(
                    [
                        (row.id, granted.status)
                        for (_, row), granted in zip(batch.earned, grants, strict=True)
                        if granted.status != "none"
                    ]
                )

            # Last before the commit: granting ends by holding the cohorts' budget rows.
            grants = await grant_rewards(tx, [e for e, _ in batch.earned], now, rewarded)
            for earned, granted in zip((e for e, _ in batch.earned), grants, strict=True):
                result.completions.append(
                    Completion(
                        earned.cohort.id,
                        earned.member,
                        earned.task.id,
                        granted.amount_minor,
                        granted.status,
                        earned.task.promote,
                    )
                )
            await tx.commit()
        result.notices = [
            (done.member, self._notice(done, batch.cohorts[done.cohort_id]))
            for done in result.completions
            if done.reward_status == "paid" or done.promoted_to
        ]
        if self.notify:
            for member, notice in result.notices:
                await self.deps.messenger.notify(member, notice)
        return result

    async def _load(
        self,
        tx: LadderTx,
        resolved: Sequence[tuple[int, IncomingEvent, MemberRef | None]],
        now: datetime,
    ) -> _Batch:
        """Everything the batch's events can touch, in a handful of queries."""
        batch = _Batch()
        users = sorted({m.user_id for _, _, m in resolved if m is not None})
        batch.cohort_of = await tx.members.current_cohorts(users)
        batch.cohorts = await tx.cohorts.get_many(sorted(set(batch.cohort_of.values())))
        wanted: set[tuple[int, int, str]] = set()
        unique_keys: dict[tuple[int, int, str], set[str]] = {}
        for _, event, member in resolved:
            in_cohort = batch.cohort_of.get(member.user_id) if member else None
            if member is None or in_cohort is None:
                continue
            for task in self._candidates(batch.cohorts[in_cohort], event):
                key = (in_cohort, member.user_id, task.id)
                wanted.add(key)
                for c in contributions(task.goal, event.type, event.data):
                    if c.unique_key is not None:
                        unique_keys.setdefault(key, set()).add(c.unique_key[:128])
        for key, rec in (await tx.tasks.progress_many(sorted(wanted), now)).items():
            batch.progress[key] = _Progress(rec.id, dict(rec.progress), rec.completed_at)
        # Only the values this batch brings are looked up: a member's earlier clicks can
        # number in the hundreds and most are irrelevant here.
        batch.uniques = await tx.tasks.unique_values_many(
            [batch.progress[k].id for k in unique_keys if k in batch.progress],
            sorted(set().union(*unique_keys.values())) if unique_keys else [],
        )
        return batch

    def _candidates(self, cohort: CohortRecord, event: IncomingEvent) -> list[Task]:
        """Unlocked tasks of the cohort's ladder that this event can count towards."""
        if event.occurred_at > cohort.ends_at:
            return []
        unlocks = self.deps.scripts.unlock_times(cohort)
        return [
            t
            for t in self.deps.scripts.tasks_for_event(cohort, event.type)
            if event.occurred_at >= unlocks[t.id]
        ]

    async def _apply(
        self,
        tx: LadderTx,
        batch: _Batch,
        member: MemberRef,
        event: IncomingEvent,
    ) -> tuple[int | None, str]:
        cohort_id = batch.cohort_of.get(member.user_id)
        if cohort_id is None:
            return None, "no_task_stage"
        cohort = batch.cohorts[cohort_id]
        if event.type == "order.paid":
            await tx.members.advance(cohort_id, member.user_id, Stage.SOLD, event.occurred_at)
        if event.occurred_at > cohort.ends_at:
            return cohort_id, "after_cohort_end"
        candidates = self._candidates(cohort, event)
        if not candidates:
            return cohort_id, "no_task"
        counted = False
        for task in candidates:
            row = batch.progress[(cohort_id, member.user_id, task.id)]
            if row.completed_at is not None:
                continue
            changed = False
            for c in contributions(task.goal, event.type, event.data):
                if c.unique_key is not None:
                    seen = batch.uniques.setdefault((row.id, c.leaf), set())
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
                self._complete(batch, cohort, member, task, row, event.occurred_at)
        return cohort_id, "counted" if counted else "no_progress"

    def _complete(
        self,
        batch: _Batch,
        cohort: CohortRecord,
        member: MemberRef,
        task: Task,
        row: _Progress,
        reached_at: datetime,
    ) -> None:
        """A task finished: the member's stages move and its reward is granted at the
        end of the batch (:meth:`_advance`, :func:`grant_rewards`)."""
        batch.tasked.setdefault((cohort.id, member.user_id), reached_at)
        batch.earned.append((Earned(cohort, member, task, reached_at), row))

    async def _advance(self, tx: LadderTx, batch: _Batch) -> None:
        """Members who finished a task are tasked (at the first they finished), then
        promoted where a task says so."""
        tasked = [(c, u, at) for (c, u), at in batch.tasked.items()]
        await tx.members.advance_each(Stage.TASKED, tasked)
        for earned, _ in batch.earned:
            if earned.task.promote:
                cohort_id, user_id = earned.cohort.id, earned.member.user_id
                stage = STAGE_FOR_PROMOTION[earned.task.promote]
                await tx.members.advance(cohort_id, user_id, stage, earned.completed_at)
                await tx.users.set_role_at_least(user_id, ROLE_FOR_PROMOTION[earned.task.promote])

    def _notice(self, done: Completion, cohort: CohortRecord) -> RewardNotice:
        task = self.deps.scripts.get(cohort).task(done.task_id)
        return RewardNotice(
            task.id,
            task.title,
            done.reward_minor if done.reward_status == "paid" else 0,
            cohort.currency,
            done.promoted_to,
            done.member.language or cohort.locale,
        )


class IngestEvents:
    """Store events, then apply the new ones at once: for callers in the process (the
    bot's own links, proofs and groups; the simulation) that want the outcome. The HTTP
    intake stores and acknowledges first and applies after (:mod:`bot.http.events`)."""

    def __init__(self, deps: Deps, *, notify: bool = True) -> None:
        self.store = StoreEvents(deps)
        self.apply = ApplyEvents(deps, notify=notify)

    async def __call__(self, source: str, events: Sequence[IncomingEvent]) -> IngestResult:
        (stored,) = await self.store(source, [events])
        result = await self.apply(stored.rows, limit=max(len(stored.rows), 1))
        result.accepted, result.duplicates = stored.accepted, stored.duplicates
        return result


WAIT_AT_MOST = timedelta(days=60)
"""How long an event waits for its member: longer than any cohort lives (a warm-up and
a task stage of the longest allowed lengths are shorter)."""


@dataclass
class CatchUp:
    applied: int = 0
    woke: int = 0
    expired: int = 0


class CatchUpEvents:
    """The tick's share: apply what is pending (stored by a process that died before
    applying, or by another one), apply waiting events whose member has arrived, and
    give up on those that waited longer than any cohort lives.

    With ``stale_after``, only events pending that long are applied here: fresher ones
    are the event applier's, which runs beside the tick in the service."""

    def __init__(
        self,
        deps: Deps,
        *,
        notify: bool = True,
        rounds: int = 20,
        batch: int = 500,
        stale_after: timedelta = timedelta(0),
    ) -> None:
        self.deps = deps
        self.apply = ApplyEvents(deps, notify=notify)
        self.rounds = rounds
        self.batch = batch
        self.stale_after = stale_after

    async def __call__(self) -> CatchUp:
        out = CatchUp()
        stale = self.deps.clock.now() - self.stale_after if self.stale_after else None
        if stale is None or await self._any_pending_since_before(stale):
            for _ in range(self.rounds):
                result = await self.apply(limit=self.batch, received_before=stale)
                out.applied += result.applied
                if result.applied == 0:
                    break
        # Each of these is one statement: no transaction around it.
        async with self.deps.uow(LadderTx).one_statement() as tx:
            ready = await tx.events.waiting_ready(500)
        if ready:
            result = await self.apply(ready, limit=len(ready))
            out.woke = result.applied - result.unmatched
        now = self.deps.clock.now()
        async with self.deps.uow(LadderTx).one_statement() as tx:
            out.expired = await tx.events.expire_waiting(now - WAIT_AT_MOST, now)
            await tx.commit()
        return out

    async def _any_pending_since_before(self, stale: datetime) -> bool:
        """Whether the first pending event was received before ``stale``: one row read.
        Claiming stale events walks the pending ones in order until it has enough, so
        asking it while a burst is fresh (all of it the applier's) would read every one
        of them, in every process, at every tick. Events are numbered as they are
        stored, so the first is the oldest (give or take two stores at the same moment,
        which the next tick sees)."""
        async with self.deps.uow(LadderTx).one_statement() as tx:
            oldest = await tx.events.oldest_pending()
        return oldest is not None and oldest < stale


class EventTally:
    """How many events are in each state and outcome, for ops."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self) -> dict[tuple[str, str | None], int]:
        async with self.deps.uow(LadderTx).transaction() as tx:
            return await tx.events.tally()


def _member(
    event: IncomingEvent, by_ref: dict[str, MemberRef], by_tg: dict[int, MemberRef]
) -> MemberRef | None:
    if event.member_ref is not None:
        return by_ref.get(event.member_ref)
    if event.telegram_user_id is not None:
        return by_tg.get(event.telegram_user_id)
    return None
