"""A/B variants compared: for every warm-up message that declares variants (a post, a
talk part, the pitch), the cohorts that got each arm and how many of their members
went on to reply to the pitch, the warm-up's aim; for every kind of daily reminder that
declares them, the members who got each arm and how many went beyond the stage they
were at when the first of them went out.

A group message's arm is drawn per cohort (``funnels.scripts.variants``), so every
member of a cohort saw the same wording: the cohort, not the member, is the unit of the
comparison, and a rate's interval is the ratio estimate's, from the spread between
cohorts. A reminder's arm is drawn per member: the member is the unit, and the interval
the binomial one. The verdict says plainly when there are too few to tell.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from funnels.deps import Deps
from funnels.kernel.stages import Stage
from funnels.ops.ports import CohortFigures, CohortFilter, KpisTx, RemindedMember
from funnels.scripts.model import Pitch, Post, ReminderText, Script, TalkPart
from funnels.scripts.variants import arms, draw, member_arm, reminder_key

MIN_COHORTS = 5
"""Fewer cohorts than this in an arm: too few to tell anything."""
MIN_MEMBERS = 30
"""Fewer members than this in an arm of a reminder: too few to tell anything."""
Z95 = 1.96
WIDE = 0.05
"""A difference whose interval still spans more than this either side of zero (five
points of reply rate) is not called "no difference": the sample is too small to tell."""


@dataclass(frozen=True, slots=True)
class ArmFigures:
    arm: str
    weight: int
    cohorts: int
    members: int
    """Members who joined the cohorts that got this arm."""
    converted: int
    """Of them, members who replied to the pitch."""
    rate: float | None
    low: float | None
    high: float | None
    """The rate's 95% interval (None with fewer than two cohorts)."""


@dataclass(frozen=True, slots=True)
class Experiment:
    script_id: str
    step_key: str
    """The step run key: a step id, or ``id.pN`` for part N of a talk."""
    kind: str
    """``post``, ``talk_part``, ``pitch`` or ``reminder``."""
    stage: str
    """The stage conversion is counted to: ``replied``, or for a reminder ``next`` (a
    stage beyond the one the member was at)."""
    arms: list[ArmFigures]
    verdict: str
    """``too_small``, ``no_difference``, or ``better`` / ``worse`` (for ``leader``)."""
    leader: str | None
    """The arm that differs from ``a`` when the verdict is ``better`` or ``worse``."""
    detail: str


Varied = Post | TalkPart | Pitch


def _varied_messages(script: Script) -> list[tuple[str, str, Varied]]:
    """(run key, kind, message) of every warm-up message with variants."""
    out: list[tuple[str, str, Varied]] = []
    for step in script.warmup.steps:
        if step.post is not None and step.post.variants:
            out.append((step.id, "post", step.post))
        if step.pitch is not None and step.pitch.variants:
            out.append((step.id, "pitch", step.pitch))
        if step.talk is not None:
            for i, part in enumerate(step.talk.parts):
                if part.variants:
                    out.append((step.id if i == 0 else f"{step.id}.p{i}", "talk_part", part))
    return out


def _ratio(cohorts: Sequence[CohortFigures]) -> tuple[int, int, float | None, float | None]:
    """(members, converted, rate, standard error) over cohorts, members weighted; the
    error from the spread of the cohorts' own rates (None with fewer than two)."""
    n = sum(c.stages.get(Stage.JOINED, 0) for c in cohorts)
    k = sum(c.stages.get(Stage.REPLIED, 0) for c in cohorts)
    if n == 0:
        return n, k, None, None
    p = k / n
    m = len(cohorts)
    if m < 2:
        return n, k, p, None
    spread = sum(
        (c.stages.get(Stage.REPLIED, 0) - p * c.stages.get(Stage.JOINED, 0)) ** 2 for c in cohorts
    )
    return n, k, p, math.sqrt(spread * m / (m - 1)) / n


def compare(
    script_id: str, key: str, kind: str, message: Varied, cohorts: Sequence[CohortFigures]
) -> Experiment:
    """The arms of one message over the cohorts that ran it."""
    by_arm: dict[str, list[CohortFigures]] = defaultdict(list)
    choices = arms(message)
    for c in cohorts:
        by_arm[draw(choices, c.code, key).id].append(c)
    figures, errors = [], {}
    for arm in choices:
        n, k, p, se = _ratio(by_arm[arm.id])
        errors[arm.id] = (p, se)
        low = high = None
        if p is not None and se is not None:
            low, high = max(0.0, p - Z95 * se), min(1.0, p + Z95 * se)
        figures.append(ArmFigures(arm.id, arm.weight, len(by_arm[arm.id]), n, k, p, low, high))
    verdict, leader, detail = _verdict(figures, errors)
    return Experiment(script_id, key, kind, Stage.REPLIED.label, figures, verdict, leader, detail)


def went_on(member: RemindedMember) -> bool:
    """Whether the member reached a stage beyond the one they were at when their first
    reminder of the kind went out."""
    reached = [s for s, at in member.stages.items() if at is not None and at <= member.first_at]
    at_then = max(reached, default=Stage.JOINED)
    return any(at is not None for s, at in member.stages.items() if s > at_then)


def compare_reminder(
    script_id: str,
    segment: str,
    reminder: ReminderText,
    reminded: Sequence[RemindedMember],
    codes: dict[int, str],
) -> Experiment:
    """The arms of one kind of reminder over the members who got it (each their own
    arm); the interval is the binomial one."""
    choices = arms(reminder)
    by_arm: dict[str, list[RemindedMember]] = defaultdict(list)
    for m in reminded:
        by_arm[member_arm(reminder, codes[m.cohort_id], segment, m.user_id).id].append(m)
    figures, errors = [], {}
    for arm in choices:
        theirs = by_arm[arm.id]
        n, k = len(theirs), sum(1 for m in theirs if went_on(m))
        p = k / n if n else None
        se = math.sqrt(p * (1 - p) / n) if p is not None and n >= 2 else None
        errors[arm.id] = (p, se)
        low = high = None
        if p is not None and se is not None:
            low, high = max(0.0, p - Z95 * se), min(1.0, p + Z95 * se)
        cohorts = len({m.cohort_id for m in theirs})
        figures.append(ArmFigures(arm.id, arm.weight, cohorts, n, k, p, low, high))
    verdict, leader, detail = _verdict(figures, errors, members=True)
    return Experiment(
        script_id, reminder_key(segment), "reminder", "next", figures, verdict, leader, detail
    )


def _verdict(
    figures: list[ArmFigures],
    errors: dict[str, tuple[float | None, float | None]],
    *,
    members: bool = False,
) -> tuple[str, str | None, str]:
    unit, least = ("members", MIN_MEMBERS) if members else ("cohorts", MIN_COHORTS)
    small = [f.arm for f in figures if (f.members if members else f.cohorts) < least]
    if small:
        return (
            "too_small",
            None,
            f"too few {unit} to tell: arm {', '.join(small)} has fewer than {least}",
        )
    base_p, base_se = errors[figures[0].arm]
    best: tuple[float, str, float, float] | None = None
    for f in figures[1:]:
        p, se = errors[f.arm]
        if p is None or se is None or base_p is None or base_se is None:
            return "too_small", None, f"arm {f.arm}: no members to compare"
        diff, half = p - base_p, Z95 * math.sqrt(se**2 + base_se**2)
        if abs(diff) > half and (best is None or abs(diff) > abs(best[0])):
            best = (diff, f.arm, diff - half, diff + half)
        elif best is None and half > WIDE:
            return (
                "too_small",
                None,
                f"arm {f.arm} against a: {diff:+.1%} (95% interval ±{half:.1%}): "
                f"too few {unit} to tell",
            )
    if best is None:
        return "no_difference", None, "no arm differs from a beyond chance"
    diff, arm, low, high = best
    word = "better" if diff > 0 else "worse"
    return (
        word,
        arm,
        f"arm {arm} converts {word} than a: {diff:+.1%} (95% interval {low:+.1%} to {high:+.1%})",
    )


class CompareVariants:
    """Every varied warm-up message of the chosen cohorts' scripts, compared. Cohorts
    are grouped by the exact script they run (its hash): two versions of a script may
    word or weigh their arms differently."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, choice: CohortFilter, ids: Sequence[int] | None = None
    ) -> list[Experiment]:
        """``ids``: only these cohorts (a simulation's own)."""
        scripts = self.deps.scripts
        async with self.deps.uow(KpisTx).transaction() as tx:
            cohorts = await tx.kpis.cohort_figures(choice, ids=ids)
            hashes = {c.script_hash for c in cohorts}
            bodies = await tx.kpis.script_bodies(sorted(h for h in hashes if not scripts.known(h)))
        running: dict[str, list[CohortFigures]] = defaultdict(list)
        for c in cohorts:
            running[c.script_hash].append(c)
        out = []
        for script_hash, theirs in running.items():
            script = scripts.by_hash(
                script_hash, partial(bodies.__getitem__, script_hash), f"cohort {theirs[0].id}"
            )
            for key, kind, message in _varied_messages(script):
                out.append(compare(script.id, key, kind, message, theirs))
            varied = _varied_reminders(script)
            if varied:
                async with self.deps.uow(KpisTx).transaction() as tx:
                    reminded = await tx.kpis.reminded([c.id for c in theirs], list(varied))
                codes = {c.id: c.code for c in theirs}
                for segment, reminder in varied.items():
                    got = [m for m in reminded if m.segment == segment]
                    out.append(compare_reminder(script.id, segment, reminder, got, codes))
        return out


def _varied_reminders(script: Script) -> dict[str, ReminderText]:
    """Segment -> the script's reminder wording for it, where it declares variants."""
    own = script.tasks.reminders
    if own is None:
        return {}
    found = {s: getattr(own, s) for s in ("on_track", "behind", "inactive", "ahead")}
    return {s: r for s, r in found.items() if r is not None and r.variants}
