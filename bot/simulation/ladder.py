"""Admitted members working down the ladder: the platform events their tasks produce
(orders paid, posts published …), posted in batches as a platform would, and the
visitors their tracked links bring (fans locked, links clicked), clicking through the
same link tracking as ``GET /r/{code}``."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

from bot.simulation.world import Action, Agenda, Cohort, Member
from funnels.deps import Deps
from funnels.kernel.records import IncomingEvent, MemberRef
from funnels.ladder.goals import target
from funnels.ladder.links import Click, FindLink, TaskLinkCode
from funnels.scripts.model import Goal, Script, Task
from funnels.scripts.variants import member_arm

CLICKED = frozenset({"fan.locked", "link.clicked"})
"""What a task's tracked link brings (a visitor's click; a first one locks a fan)."""


class LadderWork:
    def __init__(
        self,
        script: Script,
        rng: random.Random,
        agenda: Agenda,
        deps: Deps,
        run_id: int,
        arm_lift: dict[str, float] | None = None,
    ) -> None:
        self.script = script
        self.arm_lift = arm_lift or {}
        self.rng = rng
        self.agenda = agenda
        self.clock = deps.clock
        self._link_code = TaskLinkCode(deps)
        self._find = FindLink(deps)
        self._run_id = run_id
        self._event_ids = itertools.count(1)
        self.pending: list[IncomingEvent] = []
        """Events that happened and are not posted yet."""
        self.clicks: list[Click] = []
        """Clicks on tracked links not recorded yet."""
        self._codes: dict[tuple[int, str], str | None] = {}
        """The link each member shares for a task (asked for once: it never changes)."""
        self.actions = 0
        self.clicked = 0

    def take(self) -> list[IncomingEvent]:
        """The events to post, in the order they happened (re-sends included)."""
        taken, self.pending = self.pending, []
        return taken

    def take_clicks(self) -> list[Click]:
        taken, self.clicks = self.clicks, []
        return taken

    def _reminder_lift(self, cohort: Cohort, member: Member) -> float:
        """How much the wording of the member's reminders moves them (``--arm-lift``
        of the arm they draw of each kind of reminder with variants)."""
        own = self.script.tasks.reminders
        if own is None or cohort.record is None or not self.arm_lift:
            return 1.0
        lift = 1.0
        for segment in ("on_track", "behind", "inactive", "ahead"):
            reminder = getattr(own, segment)
            if reminder is not None and reminder.variants:
                arm = member_arm(reminder, cohort.record.code, segment, member.user_id)
                lift *= self.arm_lift.get(arm.id, 1.0)
        return lift

    def schedule(self, cohort: Cohort, member: Member) -> None:
        """What an admitted member will do, task by task."""
        script = self.script
        first_task_day = script.warmup.days
        drive = member.diligence
        lift = self._reminder_lift(cohort, member)
        for rank, task in enumerate(script.tasks.ladder):
            # Falling probability down the ladder (each rung a little less likely, more so
            # for the less driven, more likely with a reminder's better wording); a member
            # who stops, stops for good.
            if self.rng.random() > (0.5 + 0.45 * drive - 0.04 * rank) * lift:
                break
            day = first_task_day + task.unlock.day
            unlock = cohort.local(day, task.unlock.time.hour + task.unlock.time.minute / 60)
            complete = self.rng.random() < 0.85
            for offset, (event_type, data) in enumerate(
                self._events_for(task.goal, script.budget.currency, complete)
            ):
                when = unlock + timedelta(minutes=5 + offset * self.rng.uniform(1, 40))
                if event_type in CLICKED and task.link is not None:
                    visitor = f"{member.actor.telegram_id}-{data.get('visitor', offset)}"
                    self.agenda.at(when, self._click(cohort, member, task, visitor))
                else:
                    self.agenda.at(when, self._emit(member, event_type, data))

    def _events_for(
        self, goal: Goal, currency: str, complete: bool
    ) -> list[tuple[str, dict[str, object]]]:
        if goal.all is not None:
            return [e for g in goal.all for e in self._events_for(g, currency, complete)]
        if goal.any is not None:
            return self._events_for(self.rng.choice(goal.any), currency, complete)
        assert goal.event is not None
        base: dict[str, object] = dict(goal.where or {})
        need = target(goal, currency)
        if not complete:
            need = max(0, need // 2)
        if goal.sum is not None:
            out, total = [], 0
            while total < need:
                amount = self.rng.randint(max(1, need // 4), max(2, need // 2))
                total += amount
                out.append((goal.event, {**base, goal.sum: amount}))
            return out
        if goal.unique is not None:
            out = [(goal.event, {**base, goal.unique: f"v{n}"}) for n in range(need)]
            out += [(goal.event, {**base, goal.unique: "v0"})] * (need // 10)  # repeat visitors
            return out
        extra: dict[str, object] = (
            {"amount": self.rng.randint(1000, 20000)} if goal.event == "order.paid" else {}
        )
        return [(goal.event, {**base, **extra}) for _ in range(need)]

    def _click(self, cohort: Cohort, member: Member, task: Task, visitor: str) -> Action:
        """A visitor opens the member's tracked link for ``task`` (a new visitor on it
        is a fan locked for the member: the first link they open in the cohort)."""

        async def act() -> None:
            self.actions += 1
            assert cohort.record is not None
            key = (member.user_id, task.id)
            if key not in self._codes:
                ref = MemberRef(member.user_id, member.actor.telegram_id, member.actor.language)
                self._codes[key] = await self._link_code(cohort.record, ref, task.id)
            code = self._codes[key]
            target = await self._find(code) if code else None
            if target is not None:  # the task is open and has a target
                self.clicked += 1
                self.clicks.append(Click(target, visitor, self.clock.now()))

        return act

    def _emit(self, member: Member, event_type: str, data: dict[str, object]) -> Action:
        async def act() -> None:
            self.actions += 1
            event = IncomingEvent(
                event_id=f"sim-{self._run_id}-{next(self._event_ids)}",
                type=event_type,
                occurred_at=self.clock.now(),
                telegram_user_id=member.actor.telegram_id,
                data=data,
            )
            self.pending.append(event)
            if self.rng.random() < 0.02:
                self.pending.append(event)  # the platform re-sends now and then

        return act
