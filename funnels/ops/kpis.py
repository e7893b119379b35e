"""What ops read to see where cohorts leak: one cohort's funnel and days, the funnel of
any choice of cohorts, regions against their weekly launch target, leaders and the lines
their graduates grew, and the red flags. Every figure comes from the rollups and small
per-cohort rows (``Kpis``), never from members or events one by one.

Conventions every figure keeps: members at a stage are those at it *or beyond* (so a
funnel only narrows); a rate is None where its base is zero; money is integer minor
units of one currency (figures over cohorts of several currencies say so, see
:class:`FunnelFigures`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from funnels.deps import Deps
from funnels.kernel.stages import Stage
from funnels.ops.board import FiguresBoard
from funnels.ops.ports import CohortFigures, CohortFilter, KpisTx, RegionLine

LOW_REPLY_RATE = 0.10
"""Red flag: a cohort whose pitch has opened and fewer than this share replied."""
BUDGET_NEARLY_SPENT = 0.90
"""Red flag: a running cohort that has spent this share of its budget or more."""


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class StageLine:
    stage: Stage
    members: int
    """Members at this stage or beyond."""
    from_previous: float | None
    """Over the members at the stage before (None for ``joined``, or a zero base)."""
    from_joined: float | None


def stage_lines(stages: dict[Stage, int]) -> list[StageLine]:
    joined = stages.get(Stage.JOINED, 0)
    lines, previous = [], None
    for stage in Stage:
        n = stages.get(stage, 0)
        lines.append(
            StageLine(
                stage,
                n,
                None if previous is None else rate(n, previous),
                rate(n, joined),
            )
        )
        previous = n
    return lines


def cost_per(spent_minor: int, members: int) -> int | None:
    """Money spent over members, rounded half up to a minor unit (None without members)."""
    if members <= 0:
        return None
    return (2 * spent_minor + members) // (2 * members)


@dataclass(frozen=True, slots=True)
class FunnelFigures:
    """A funnel over one or more cohorts."""

    cohorts: int
    stages: list[StageLine]
    reply_rate: float | None
    """Members who replied to the pitch over members who joined."""
    currency: str | None
    """The cohorts' currency; None when they use several (money figures are then None)."""
    spent_minor: int | None
    """Budget spent: envelope shares and task rewards."""
    cost_per_sold_minor: int | None
    """Spent over members who sold, rounded to a minor unit."""

    @classmethod
    def of(cls, cohorts: Sequence[CohortFigures]) -> FunnelFigures:
        stages = dict.fromkeys(Stage, 0)
        for cohort in cohorts:
            for stage, n in cohort.stages.items():
                stages[stage] += n
        currencies = {c.currency for c in cohorts}
        currency = currencies.pop() if len(currencies) == 1 else None
        spent = sum(c.spent_minor for c in cohorts) if currency else None
        return cls(
            len(cohorts),
            stage_lines(stages),
            rate(stages[Stage.REPLIED], stages[Stage.JOINED]),
            currency,
            spent,
            cost_per(spent, stages[Stage.SOLD]) if spent is not None else None,
        )


@dataclass(frozen=True, slots=True)
class DayLine:
    """One local day of a cohort: members entering each stage, and the group's chatter."""

    day: date
    number: int
    """The cohort's day: 1 is its start date (days before it count down to 0, -1, …)."""
    entered: dict[Stage, int]
    messages: int
    writers: int
    """Members who wrote at least one message that day."""


@dataclass(frozen=True, slots=True)
class CohortFunnel:
    cohort: CohortFigures
    funnel: FunnelFigures
    days: list[DayLine]


async def figures(
    deps: Deps,
    board: FiguresBoard | None,
    choice: CohortFilter,
    *,
    ids: Sequence[int] | None = None,
) -> list[CohortFigures]:
    """The cohorts of ``choice`` (and ``ids``) with their figures: from the board when it
    is ready and holds them all, from the database otherwise."""
    if board is not None and board.ready:
        found = board.chosen(choice, ids=ids)
        if ids is None or len(found) == len(set(ids)):
            return found
    async with deps.uow(KpisTx).one_statement() as tx:
        return await tx.kpis.cohort_figures(choice, ids=ids)


class CohortFunnelReport:
    """A cohort's funnel, and (``days``) its days: the funnel alone is one statement, or
    none with a :class:`~funnels.ops.board.FiguresBoard`."""

    def __init__(self, deps: Deps, board: FiguresBoard | None = None) -> None:
        self.deps = deps
        self.board = board

    async def __call__(self, cohort_id: int, *, days: bool = True) -> CohortFunnel | None:
        if not days:
            found = await figures(self.deps, self.board, CohortFilter(), ids=[cohort_id])
            return CohortFunnel(found[0], FunnelFigures.of(found), []) if found else None
        async with self.deps.uow(KpisTx).transaction() as tx:
            found = await tx.kpis.cohort_figures(CohortFilter(), ids=[cohort_id])
            if not found:
                return None
            entered = await tx.kpis.funnel_days(cohort_id)
            activity = await tx.kpis.activity_days(cohort_id)
        cohort = found[0]
        by_day: dict[date, dict[Stage, int]] = defaultdict(dict)
        for (day, stage), n in entered.items():
            by_day[day][stage] = n
        lines = [
            DayLine(
                day,
                (day - cohort.start_date).days + 1,
                {s: by_day[day].get(s, 0) for s in Stage},
                *activity.get(day, (0, 0)),
            )
            for day in sorted(set(by_day) | set(activity))
        ]
        return CohortFunnel(cohort, FunnelFigures.of(found), lines)


class FunnelOver:
    """The funnel of every cohort that matches a filter, summed."""

    def __init__(self, deps: Deps, board: FiguresBoard | None = None) -> None:
        self.deps = deps
        self.board = board

    async def __call__(self, choice: CohortFilter) -> FunnelFigures:
        return FunnelFigures.of(await figures(self.deps, self.board, choice))


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_days(week: str) -> tuple[date, date]:
    """Monday and Sunday of an ISO week written ``YYYY-Www``; ValueError otherwise."""
    try:
        year, number = week.split("-W")
        monday = date.fromisocalendar(int(year), int(number), 1)
    except ValueError:
        raise ValueError(f"{week!r} is not an ISO week such as 2026-W47") from None
    return monday, monday + timedelta(days=6)


@dataclass(frozen=True, slots=True)
class RegionWeek:
    """A region's cohorts launched (started) in one ISO week, and how they convert."""

    region: str
    name: str
    weekly_target: int
    launched: int
    capacity: int
    joined: int
    capacity_fill: float | None
    replied: int
    reply_rate: float | None
    admitted: int
    sold: int
    shopkeepers: int

    @property
    def behind(self) -> bool:
        return self.launched < self.weekly_target


class RegionKpis:
    def __init__(self, deps: Deps, board: FiguresBoard | None = None) -> None:
        self.deps = deps
        self.board = board

    async def __call__(self, week: str, region: str | None = None) -> list[RegionWeek]:
        found = self.at_once(week, region)
        if found is not None:
            return found
        monday, sunday = week_days(week)
        choice = CohortFilter(region=region, start_from=monday, start_to=sunday)
        async with self.deps.uow(KpisTx).transaction() as tx:
            regions = await tx.kpis.regions()
            cohorts = await tx.kpis.cohort_figures(choice)
        return region_weeks(regions, cohorts, region)

    def at_once(self, week: str, region: str | None = None) -> list[RegionWeek] | None:
        """From the board, with no statement; None when there is no board ready."""
        if self.board is None or not self.board.ready:
            return None
        monday, sunday = week_days(week)
        choice = CohortFilter(region=region, start_from=monday, start_to=sunday)
        return region_weeks(self.board.regions(), self.board.chosen(choice), region)


def region_weeks(
    regions: Sequence[RegionLine], cohorts: Sequence[CohortFigures], region: str | None
) -> list[RegionWeek]:
    """Each region (or ``region``) with its cohorts of the week."""
    by_region: dict[str | None, list[CohortFigures]] = defaultdict(list)
    for cohort in cohorts:
        by_region[cohort.region].append(cohort)
    return [
        _region_week(r.code, r.name, r.weekly_target, by_region.get(r.code, []))
        for r in regions
        if region is None or r.code == region
    ]


def _region_week(code: str, name: str, target: int, cohorts: list[CohortFigures]) -> RegionWeek:
    def total(stage: Stage) -> int:
        return sum(c.stages.get(stage, 0) for c in cohorts)

    capacity, joined, replied = (
        sum(c.capacity for c in cohorts),
        total(Stage.JOINED),
        total(Stage.REPLIED),
    )
    return RegionWeek(
        code,
        name,
        target,
        len(cohorts),
        capacity,
        joined,
        rate(joined, capacity),
        replied,
        rate(replied, joined),
        total(Stage.ADMITTED),
        total(Stage.SOLD),
        total(Stage.SHOPKEEPER),
    )


@dataclass(frozen=True, slots=True)
class Generation:
    """The lines of one generation grown out of a leader's own cohorts."""

    generation: int
    cohorts: int
    joined: int
    sold: int
    shopkeepers: int


@dataclass(frozen=True, slots=True)
class LeaderLine:
    telegram_id: int | None
    name: str | None
    cohorts: int
    """The leader's own cohorts (not the lines of their graduates)."""
    joined: int
    replied: int
    admitted: int
    sold: int
    shopkeepers: int
    conversion: float | None
    """Sold over joined, in the leader's own cohorts."""
    lines: list[Generation] = field(default_factory=list)
    """Cohorts launched by graduates of the leader's cohorts, and by their graduates, by
    generation (2: a graduate's line, 3: a line of that line's graduate, …)."""


class LeaderKpis:
    def __init__(self, deps: Deps, board: FiguresBoard | None = None) -> None:
        self.deps = deps
        self.board = board

    async def __call__(self, region: str | None = None) -> list[LeaderLine]:
        return leader_lines(await figures(self.deps, self.board, CohortFilter()), region)


def leader_lines(cohorts: Sequence[CohortFigures], region: str | None) -> list[LeaderLine]:
    """Leaders, the most sold first. A cohort belongs to its leader; the lines grown out
    of it (by ``parent_cohort_id``, at any depth) count for that leader too, per
    generation, as long as they are of another leader (a graduate)."""
    by_id = {c.id: c for c in cohorts}
    children: dict[int, list[CohortFigures]] = defaultdict(list)
    for c in cohorts:
        if c.parent_cohort_id is not None and c.parent_cohort_id in by_id:
            children[c.parent_cohort_id].append(c)
    own: dict[int | None, list[CohortFigures]] = defaultdict(list)
    for c in cohorts:
        if region is None or c.region == region:
            own[c.leader_telegram_id].append(c)
    lines = []
    for leader, theirs in own.items():
        grown = _descendants(theirs, children)

        def total(stage: Stage, among: Iterable[CohortFigures]) -> int:
            return sum(c.stages.get(stage, 0) for c in among)

        generations: dict[int, list[CohortFigures]] = defaultdict(list)
        for c in grown:
            if c.leader_telegram_id != leader:
                generations[c.generation].append(c)
        joined, sold = total(Stage.JOINED, theirs), total(Stage.SOLD, theirs)
        lines.append(
            LeaderLine(
                leader,
                theirs[0].leader_name,
                len(theirs),
                joined,
                total(Stage.REPLIED, theirs),
                total(Stage.ADMITTED, theirs),
                sold,
                total(Stage.SHOPKEEPER, theirs),
                rate(sold, joined),
                [
                    Generation(
                        g,
                        len(cs),
                        total(Stage.JOINED, cs),
                        total(Stage.SOLD, cs),
                        total(Stage.SHOPKEEPER, cs),
                    )
                    for g, cs in sorted(generations.items())
                ],
            )
        )
    lines.sort(key=lambda line: (-line.sold, -line.joined, line.telegram_id or 0))
    return lines


def _descendants(
    roots: Iterable[CohortFigures], children: dict[int, list[CohortFigures]]
) -> list[CohortFigures]:
    found: list[CohortFigures] = []
    seen: set[int] = set()
    todo = [c for root in roots for c in children.get(root.id, [])]
    while todo:
        c = todo.pop()
        if c.id in seen:
            continue
        seen.add(c.id)
        found.append(c)
        todo.extend(children.get(c.id, []))
    return found


@dataclass(frozen=True, slots=True)
class Flag:
    """Something ops should look at now."""

    kind: str
    """``low_reply``, ``region_behind``, ``unknown_steps``, ``budget_low`` or
    ``payouts_parked``."""
    cohort_id: int | None
    cohort_code: str | None
    region: str | None
    figure: float
    """The figure that raised it: a rate, a count, or a share of the budget."""
    detail: str
    """The same in words (English, for logs and tools)."""
    part: int | None = None
    whole: int | None = None
    """What a sentence in another language needs beside ``figure``: members who replied
    of those who joined (``low_reply``), minor units spent of the budget
    (``budget_low``), cohorts launched of the weekly target (``region_behind``), the
    parked payouts' minor units (``payouts_parked``, no whole)."""
    currency: str | None = None
    """Of the money in ``part`` and ``whole``, where they are money."""


class RedFlags:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self) -> list[Flag]:
        now: datetime = self.deps.clock.now()
        monday, sunday = week_days(iso_week(now.date()))
        async with self.deps.uow(KpisTx).transaction() as tx:
            active = await tx.kpis.cohort_figures(CohortFilter(), active_only=True)
            unknown = await tx.kpis.unknown_steps()
            parked = await tx.kpis.parked_payouts()
            regions = await tx.kpis.regions()
            this_week = await tx.kpis.cohort_figures(
                CohortFilter(start_from=monday, start_to=sunday)
            )
            # Parked payouts also flag cohorts that have finished.
            extra = sorted(set(unknown) | set(parked) - {c.id for c in active})
            outside = await tx.kpis.cohort_figures(CohortFilter(), ids=extra) if extra else []
        return red_flags(active, outside, unknown, parked, regions, this_week, iso_week(monday))


def red_flags(
    active: Sequence[CohortFigures],
    outside: Sequence[CohortFigures],
    unknown: dict[int, int],
    parked: dict[int, tuple[int, int]],
    regions: Sequence[RegionLine],
    this_week: Sequence[CohortFigures],
    week: str,
) -> list[Flag]:
    flags: list[Flag] = []
    cohorts = {c.id: c for c in [*active, *outside]}
    for c in active:
        joined, replied = c.stages.get(Stage.JOINED, 0), c.stages.get(Stage.REPLIED, 0)
        reply = rate(replied, joined)
        if c.pitch_opened_at is not None and reply is not None and reply < LOW_REPLY_RATE:
            flags.append(
                Flag(
                    "low_reply",
                    c.id,
                    c.code,
                    c.region,
                    round(reply, 4),
                    f"{replied} of {joined} members replied to the pitch "
                    f"(under {LOW_REPLY_RATE:.0%})",
                    replied,
                    joined,
                )
            )
        used = rate(c.spent_minor, c.budget_minor)
        if c.status == "running" and used is not None and used >= BUDGET_NEARLY_SPENT:
            flags.append(
                Flag(
                    "budget_low",
                    c.id,
                    c.code,
                    c.region,
                    round(used, 4),
                    f"{used:.0%} of the budget spent "
                    f"({c.spent_minor} of {c.budget_minor} {c.currency} minor units)",
                    c.spent_minor,
                    c.budget_minor,
                    c.currency,
                )
            )
    for cohort_id, n in sorted(unknown.items()):
        one = cohorts.get(cohort_id)
        flags.append(
            Flag(
                "unknown_steps",
                cohort_id,
                one.code if one else None,
                one.region if one else None,
                n,
                f"{n} step(s) whose send cannot be told after a crash: retry or skip",
            )
        )
    for cohort_id, (n, minor) in sorted(parked.items()):
        one = cohorts.get(cohort_id)
        flags.append(
            Flag(
                "payouts_parked",
                cohort_id,
                one.code if one else None,
                one.region if one else None,
                n,
                f"{n} payout(s) parked after failed deliveries ({minor} minor units)",
                minor,
                None,
                one.currency if one else None,
            )
        )
    launched: dict[str | None, int] = defaultdict(int)
    for c in this_week:
        launched[c.region] += 1
    for r in regions:
        code, target = r.code, r.weekly_target
        if launched[code] < target:
            flags.append(
                Flag(
                    "region_behind",
                    None,
                    None,
                    code,
                    launched[code],
                    f"{launched[code]} of {target} cohort(s) launched in {week}",
                    launched[code],
                    target,
                )
            )
    return flags
