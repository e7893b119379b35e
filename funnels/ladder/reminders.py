"""Daily reminders: at most one private message a day to each member of a task stage,
chosen by where they stand in the ladder, in their language, outside the script's quiet
hours; never to members who finished the ladder, left, or cannot be reached.

The wording is the built-in one in the member's language, or the script's own for
the segment (``tasks.reminders``), the member's arm of it when it declares variants.

Run from the tick. Each reminder is claimed (one row per member and local day) and
committed before it is sent, so a repeat tick, another process or a crash never sends
a second one that day."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from funnels.deps import Deps
from funnels.kernel.messaging import Reminder, ReminderSegment
from funnels.kernel.records import CohortRecord, ReminderCandidate
from funnels.ladder.ports import LadderTx
from funnels.scripts.model import Script, Task
from funnels.scripts.planner import task_stage_start
from funnels.scripts.variants import member_arm

REMIND_FROM = time(10, 0)
"""Local time from which the day's reminders go out (after the 09:00 unlocks), unless it
falls in the script's quiet hours: then from when they end."""
INACTIVE_AFTER = timedelta(days=2)
"""A member with open tasks who did nothing for this long is ``inactive``."""
LOOK_AGAIN = timedelta(minutes=1)
"""Once every running cohort has had its pass for the day or may not have one yet, how
long the ticks skip reading them: a cohort that starts, or whose reminder time comes,
waits at most this long (a reminder is daily), and ticks twice a second stay cheap."""


def segment_of(open_tasks: list[Task], last_active: datetime, now: datetime) -> ReminderSegment:
    """Where a member stands: nothing done for two days beats the rest (if anything is
    open), then ahead (nothing open), on track (one open), behind (more)."""
    if open_tasks and now - last_active >= INACTIVE_AFTER:
        return "inactive"
    if not open_tasks:
        return "ahead"
    return "on_track" if len(open_tasks) == 1 else "behind"


class RemindMembers:
    """One pass over the running cohorts whose local time allows a reminder; returns how
    many reminders were sent. Keep one instance: it remembers which cohorts are done for
    their day, and once all are, later ticks skip the pass for :data:`LOOK_AGAIN`."""

    def __init__(self, deps: Deps, *, batch: int = 200) -> None:
        self.deps = deps
        self.batch = batch
        self._done: set[tuple[int, date]] = set()
        self._idle: tuple[datetime, datetime] | None = None
        """(from, until): the last pass found nothing left to send."""

    async def __call__(self) -> int:
        now = self.deps.clock.now()
        if self._idle is not None and self._idle[0] <= now < self._idle[1]:
            return 0
        async with self.deps.uow(LadderTx).transaction() as tx:
            cohorts = await tx.cohorts.running(now)
        sent, unfinished = 0, False
        for cohort in cohorts:
            script = self.deps.scripts.get(cohort)
            local = now.astimezone(ZoneInfo(cohort.timezone))
            day = local.date()
            if (cohort.id, day) in self._done or not self._may_remind(script, cohort, local):
                continue
            sent += await self._remind(cohort, script, day, now)
            unfinished = unfinished or (cohort.id, day) not in self._done
        self._idle = None if unfinished else (now, now + LOOK_AGAIN)
        return sent

    @staticmethod
    def _may_remind(script: Script, cohort: CohortRecord, local: datetime) -> bool:
        if local.date() < task_stage_start(script, cohort.start_date):
            return False
        quiet = script.quiet_hours
        return local.time() >= REMIND_FROM and not (quiet and quiet.contains(local.time()))

    async def _remind(self, cohort: CohortRecord, script: Script, day: date, now: datetime) -> int:
        async with self.deps.uow(LadderTx).transaction() as tx:
            found = await tx.reminders.candidates(cohort.id, day, self.batch)
            planned = [(c, self._reminder(cohort, script, c, now)) for c in found]
            won = await tx.reminders.claim_many(
                [(c.member.user_id, r.segment if r else "finished") for c, r in planned],
                day,
                cohort.id,
                now,
            )
            await tx.commit()
        claimed = [(c, r) for c, r in planned if r is not None and c.member.user_id in won]
        if len(found) < self.batch:
            self._done.add((cohort.id, day))  # everyone has theirs (new members: tomorrow)
        reached: list[int] = []
        missed: list[int] = []
        for candidate, reminder in claimed:
            ok = await self.deps.messenger.notify(candidate.member, reminder)
            (reached if ok else missed).append(candidate.member.user_id)
        async with self.deps.uow(LadderTx).transaction() as tx:
            await tx.reminders.delivered(reached, day, True)
            await tx.reminders.delivered(missed, day, False)
            await tx.commit()
        return len(reached)

    def _reminder(
        self, cohort: CohortRecord, script: Script, candidate: ReminderCandidate, now: datetime
    ) -> Reminder | None:
        """The member's reminder; None when they finished the whole ladder."""
        ladder = script.tasks.ladder
        if all(t.id in candidate.completed for t in ladder):
            return None
        unlocks = self.deps.scripts.unlock_times(cohort)
        open_tasks = [t for t in ladder if unlocks[t.id] <= now and t.id not in candidate.completed]
        later = sorted(unlocks[t.id] for t in ladder if unlocks[t.id] > now)
        segment = segment_of(open_tasks, candidate.last_active, now)
        own = getattr(script.tasks.reminders, segment, None) if script.tasks.reminders else None
        wording = (
            member_arm(own, cohort.code, segment, candidate.member.user_id).text if own else None
        )
        return Reminder(
            segment,
            open_tasks[0].title if open_tasks else None,
            len(open_tasks),
            later[0] if later else None,
            cohort.timezone,
            candidate.member.language or cohort.locale,
            wording,
        )
