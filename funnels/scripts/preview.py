"""A script as its groups would see it: the planned runs (:func:`~funnels.scripts.planner.plan`)
by local day, each with what it says, and per day the restraint figures seed 004 asks
for: how many messages the bot posts in the group, how many of them in quiet hours,
and whether the day has more steps than a group takes.

Pure: the start date and zone come from the caller (a cohort's own, or any day for a
library script).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from funnels.kernel.records import PlanKind
from funnels.scripts.checks import MAX_STEPS_PER_DAY
from funnels.scripts.model import Pitch, Post, Script, TalkPart
from funnels.scripts.planner import PlannedStep, plan
from funnels.scripts.variants import arms, draw

TEXT_LIMIT = 280
"""A message's text in the preview: its beginning, enough to recognise it."""


@dataclass(frozen=True, slots=True)
class Moment:
    """One planned run and what the group sees of it."""

    run: PlannedStep
    text: str | None
    """The message (its beginning), an envelope's caption, a task's title; None for a
    close, which posts nothing."""
    posts: bool
    """Whether the bot posts a message in a group for it."""
    quiet: bool
    """Posted inside the script's quiet hours."""
    arms: tuple[str, ...] = ()
    """The message's A/B arms, ``a`` first (empty without variants)."""
    arm: str | None = None
    """The arm the cohort's group gets (a cohort's preview of a varied message)."""
    amount: str | None = None
    """An envelope's total, as the script writes it (in the budget currency)."""
    shares: int | None = None
    pin: bool = False


@dataclass(frozen=True, slots=True)
class ScriptDay:
    """A local day of the script."""

    date: date
    stage: str
    """``warmup`` or ``tasks``."""
    day: int
    """The day within its stage (1-based)."""
    moments: list[Moment]

    @property
    def messages(self) -> int:
        """Messages the bot posts in the group that day."""
        return sum(1 for m in self.moments if m.posts)

    @property
    def quiet(self) -> int:
        """Of them, those inside quiet hours."""
        return sum(1 for m in self.moments if m.posts and m.quiet)

    @property
    def steps(self) -> int:
        """Warm-up steps that start that day (a talk is one step, however many parts)."""
        return len({m.run.source for m in self.moments if _starts_a_step(m.run)})

    @property
    def crowded(self) -> bool:
        return self.steps > MAX_STEPS_PER_DAY


_STEP_STARTS = frozenset({PlanKind.POST, PlanKind.RED_ENVELOPE, PlanKind.PITCH})


def _starts_a_step(run: PlannedStep) -> bool:
    return run.kind in _STEP_STARTS or (run.kind is PlanKind.TALK_PART and run.part == 0)


def _brief(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1].rstrip() + "…"


def _quiet(script: Script, at: datetime) -> bool:
    return script.quiet_hours is not None and script.quiet_hours.contains(at.time())


def _message(script: Script, run: PlannedStep) -> Post | TalkPart | Pitch | None:
    if run.kind is PlanKind.POST:
        return script.step(run.source).post
    if run.kind is PlanKind.PITCH:
        return script.step(run.source).pitch
    if run.kind is PlanKind.TALK_PART and run.part is not None:
        talk = script.step(run.source).talk
        return talk.parts[run.part] if talk is not None else None
    return None


def moment(script: Script, run: PlannedStep, cohort_code: str | None = None) -> Moment:
    """What the group sees of ``run``; for a cohort (``cohort_code``), the wording of
    the arm its group gets."""
    message = _message(script, run)
    if message is not None:
        choices = arms(message)
        arm = draw(choices, cohort_code, run.key) if cohort_code is not None else choices[0]
        ids = tuple(a.id for a in choices) if message.variants else ()
        pin = isinstance(message, Post | Pitch) and message.pin
        talk = script.step(run.source).talk
        if talk is not None and run.part == 0:
            pin = talk.pin
        return Moment(
            run,
            _brief(arm.text),
            True,
            _quiet(script, run.local_at),
            ids,
            arm.id if ids and cohort_code is not None else None,
            pin=pin,
        )
    if run.kind is PlanKind.RED_ENVELOPE:
        envelope = script.step(run.source).red_envelope
        assert envelope is not None
        return Moment(
            run,
            _brief(envelope.text),
            True,
            _quiet(script, run.local_at),
            amount=envelope.total,
            shares=envelope.shares,
        )
    if run.kind is PlanKind.TASK_UNLOCK:
        task = script.task(run.source)
        return Moment(
            run, task.title, task.announce, task.announce and _quiet(script, run.local_at)
        )
    return Moment(run, None, False, False)  # a close: nothing posted


def script_days(
    script: Script, start: date, tz: ZoneInfo, cohort_code: str | None = None
) -> list[ScriptDay]:
    """Every planned run by local day, in time order. The task group gets one message
    a day however many tasks unlock that day (the first announced task's run posts it),
    so only that one counts as posted."""
    days: dict[date, list[Moment]] = {}
    announced: set[date] = set()
    for run in plan(script, start, tz):
        seen = moment(script, run, cohort_code)
        local = run.local_at.date()
        if run.kind is PlanKind.TASK_UNLOCK and seen.posts:
            if local in announced:
                seen = Moment(run, seen.text, False, False)
            announced.add(local)
        days.setdefault(local, []).append(seen)
    out = []
    for local, moments in sorted(days.items()):
        n = (local - start).days + 1
        stage, day = ("warmup", n) if n <= script.warmup.days else ("tasks", n - script.warmup.days)
        out.append(ScriptDay(local, stage, day, moments))
    return out
