"""Admitted members working down the ladder: the platform events their tasks produce
(fans locked, links clicked, orders paid …), posted in batches as a platform would."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

from bot.simulation.world import Action, Agenda, Cohort, Member
from funnels.kernel.clock import Clock
from funnels.kernel.records import IncomingEvent
from funnels.ladder.goals import target
from funnels.scripts.model import Goal, Script


class LadderWork:
    def __init__(
        self, script: Script, rng: random.Random, agenda: Agenda, clock: Clock, run_id: int
    ) -> None:
        self.script = script
        self.rng = rng
        self.agenda = agenda
        self.clock = clock
        self._run_id = run_id
        self._event_ids = itertools.count(1)
        self.pending: list[IncomingEvent] = []
        """Events that happened and are not posted yet."""
        self.actions = 0

    def take(self) -> list[IncomingEvent]:
        """The events to post, in the order they happened (re-sends included)."""
        taken, self.pending = self.pending, []
        return taken

    def schedule(self, cohort: Cohort, member: Member) -> None:
        """What an admitted member will do, task by task."""
        script = self.script
        first_task_day = script.warmup.days
        drive = member.diligence
        for rank, task in enumerate(script.tasks.ladder):
            # Falling probability down the ladder (each rung a little less likely, more so
            # for the less driven); a member who stops, stops for good.
            if self.rng.random() > 0.5 + 0.45 * drive - 0.04 * rank:
                break
            day = first_task_day + task.unlock.day
            unlock = cohort.local(day, task.unlock.time.hour + task.unlock.time.minute / 60)
            complete = self.rng.random() < 0.85
            for offset, (event_type, data) in enumerate(
                self._events_for(task.goal, script.budget.currency, complete)
            ):
                when = unlock + timedelta(minutes=5 + offset * self.rng.uniform(1, 40))
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
