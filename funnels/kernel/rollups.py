"""How a member's stages are counted per day, the one rule both the live rollups and
their recount follow.

A member *stands at* a stage from the moment they first reach it or any stage beyond it
(stages are monotonic, and a member may skip one: an order can be paid before any task
is done). So the day a member enters stage ``s`` of the funnel is the local day of the
earliest timestamp among stages ``s`` and above. Counting members per (day, stage) that
way, the sum over days of a stage is the number of members at that stage or beyond, the
same figure as every other report; and it can be recounted from the members' stage
timestamps alone, whatever order events arrived in.

When a member's timestamps change, :func:`funnel_moves` says which (day, stage) counts
change: one member is taken out of the old day and put into the new one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from zoneinfo import ZoneInfo

from funnels.kernel.stages import Stage

StageTimes = Mapping[Stage, datetime | None]
"""A member's stage timestamps (``joined_at`` … ``supervisor_at``); None: not reached."""

FunnelCounts = Counter[tuple[date, Stage]]
"""Members per (local day, stage): how many entered the stage that day."""


def entry_days(times: StageTimes, tz: ZoneInfo) -> dict[Stage, date]:
    """The local day the member entered each stage they stand at."""
    days: dict[Stage, date] = {}
    earliest: datetime | None = None
    for stage in reversed(Stage):
        at = times.get(stage)
        if at is not None and (earliest is None or at < earliest):
            earliest = at
        if earliest is not None:
            days[stage] = earliest.astimezone(tz).date()
    return days


def funnel_moves(before: StageTimes, after: StageTimes, tz: ZoneInfo) -> FunnelCounts:
    """What changes in the per-day counts when one member's timestamps go from
    ``before`` to ``after``: +1 where they now enter, -1 where they no longer do."""
    moves: FunnelCounts = Counter()
    old, new = entry_days(before, tz), entry_days(after, tz)
    for stage in Stage:
        was, now = old.get(stage), new.get(stage)
        if was == now:
            continue
        if was is not None:
            moves[(was, stage)] -= 1
        if now is not None:
            moves[(now, stage)] += 1
    return moves


def recount(members: Iterable[StageTimes], tz: ZoneInfo) -> FunnelCounts:
    """The per-day counts of a cohort's members, from scratch."""
    counts: FunnelCounts = Counter()
    for times in members:
        for stage, day in entry_days(times, tz).items():
            counts[(day, stage)] += 1
    return counts


def stage_totals(counts: Mapping[tuple[date, Stage], int]) -> dict[Stage, int]:
    """Members at each stage or beyond: the per-day counts summed over days."""
    totals = dict.fromkeys(Stage, 0)
    for (_, stage), n in counts.items():
        totals[stage] += n
    return totals
