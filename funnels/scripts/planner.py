"""The planner: a script plus a cohort start date and time zone -> the step runs to schedule.

Starting a cohort writes one ``step_run`` row per :class:`PlannedStep` (unique on cohort +
key), and the scheduler tick executes the rows as they fall due. The planner is pure: it
never reads the clock, it only turns local wall times of the script into UTC instants.

Time rules, so a cohort behaves the same in every zone and across DST changes:

* Warm-up day ``d`` is the local date ``start + (d - 1)``; task-stage day ``d`` is
  ``start + warmup.days + (d - 1)``.
* A wall time is converted with :mod:`zoneinfo` at ``fold=0``. For an ambiguous time
  (fall back) that is the first occurrence. For a time that does not exist (spring
  forward) PEP 495 applies the offset from before the transition, which lands the run the
  length of the gap later on the wall clock (02:30 in a 1 h gap runs at 03:30). That keeps
  two steps inside the gap distinct and in their written order.
* Durations (talk ``after``, envelope ``expires_in``, pitch ``window``) are elapsed time,
  added in UTC: a 24 h window over a DST change is still 24 hours long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from funnels.kernel.records import PlanKind, PlanStage
from funnels.scripts.model import Script, Step


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One run the scheduler will execute; ``key`` is the step_run key within the cohort."""

    key: str
    """Unique within a cohort and stable across re-plans of the same script."""
    source: str
    """The script step id or task id this run comes from."""
    kind: PlanKind
    stage: PlanStage
    day: int
    """1-based day within its stage of the source step (a close may fall on a later day)."""
    due_at: datetime
    """Aware, UTC."""
    local_at: datetime
    """``due_at`` in the cohort zone, for previews and /status."""
    part: int | None = None
    """Talk part index, 0-based; ``None`` for every other kind."""


def local_instant(start: date, day: int, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of local time ``at`` on 1-based ``day`` counted from ``start``."""
    if day < 1:
        raise ValueError(f"day must be 1 or more, not {day}")
    local_date = start + timedelta(days=day - 1)
    # fold=0 explicitly: the first occurrence of an ambiguous time, and for a time in a
    # gap the pre-transition offset, i.e. shifted forward by the gap (see module doc).
    wall = datetime.combine(local_date, at.replace(tzinfo=None, fold=0), tzinfo=tz)
    return wall.astimezone(UTC)


def task_stage_start(script: Script, start: date) -> date:
    """The first local day of the task stage: the day after the last warm-up day."""
    return start + timedelta(days=script.warmup.days)


def plan(script: Script, start: date, tz: ZoneInfo) -> list[PlannedStep]:
    """Every step run of a cohort starting on local date ``start`` in zone ``tz``.

    Sorted by ``(due_at, key)`` so that runs due at the same instant execute in a stable
    order. Raises ``ValueError`` if two runs would share a key (duplicate ids in an
    unvalidated script), because the step_run table is unique on it.
    """
    out: list[PlannedStep] = []
    for step in script.warmup.steps:
        out.extend(_plan_step(step, start, tz))

    tasks_start = task_stage_start(script, start)
    for task in script.tasks.ladder:
        due = local_instant(tasks_start, task.unlock.day, task.unlock.time, tz)
        out.append(
            _planned(
                f"task.{task.id}",
                task.id,
                PlanKind.TASK_UNLOCK,
                PlanStage.TASKS,
                task.unlock.day,
                due,
                tz,
            )
        )

    seen: set[str] = set()
    for planned in out:
        if planned.key in seen:
            raise ValueError(f"two planned runs share the key {planned.key!r}; ids must be unique")
        seen.add(planned.key)

    out.sort(key=lambda p: (p.due_at, p.key))
    return out


def _planned(
    key: str,
    source: str,
    kind: PlanKind,
    stage: PlanStage,
    day: int,
    due_at: datetime,
    tz: ZoneInfo,
    part: int | None = None,
) -> PlannedStep:
    return PlannedStep(
        key=key,
        source=source,
        kind=kind,
        stage=stage,
        day=day,
        due_at=due_at,
        local_at=due_at.astimezone(tz),
        part=part,
    )


def _plan_step(step: Step, start: date, tz: ZoneInfo) -> list[PlannedStep]:
    """The runs of one warm-up step: the step itself plus its parts or its close."""
    day = step.at.day
    due = local_instant(start, day, step.at.time, tz)
    sid = step.id
    if step.post is not None:
        return [_planned(sid, sid, PlanKind.POST, PlanStage.WARMUP, day, due, tz)]
    if step.talk is not None:
        runs: list[PlannedStep] = []
        part_due = due
        for index, part in enumerate(step.talk.parts):
            # ``after`` is the pause since the previous part, so the offsets accumulate.
            part_due = part_due + part.after
            key = sid if index == 0 else f"{sid}.p{index}"
            runs.append(
                _planned(key, sid, PlanKind.TALK_PART, PlanStage.WARMUP, day, part_due, tz, index)
            )
        return runs
    if step.red_envelope is not None:
        close = due + step.red_envelope.expires_in
        return [
            _planned(sid, sid, PlanKind.RED_ENVELOPE, PlanStage.WARMUP, day, due, tz),
            _planned(
                f"{sid}.close", sid, PlanKind.ENVELOPE_CLOSE, PlanStage.WARMUP, day, close, tz
            ),
        ]
    if step.pitch is not None:
        close = due + step.pitch.reply.window
        return [
            _planned(sid, sid, PlanKind.PITCH, PlanStage.WARMUP, day, due, tz),
            _planned(f"{sid}.close", sid, PlanKind.PITCH_CLOSE, PlanStage.WARMUP, day, close, tz),
        ]
    # Unreachable for a validated Step (exactly one action), but fail loudly if not.
    raise ValueError(f"step {sid!r} has no action")
